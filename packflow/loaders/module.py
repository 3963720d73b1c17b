"""`ModuleLoader` at upstream's module path: a backend from an importable module."""

from __future__ import annotations

from packflow.loaders.base import ModuleLoader

__all__ = ["ModuleLoader"]
