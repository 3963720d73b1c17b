"""`LocalLoader` at upstream's module path: a backend from a file in the project."""

from __future__ import annotations

from packflow.loaders.base import LocalLoader

__all__ = ["LocalLoader"]
