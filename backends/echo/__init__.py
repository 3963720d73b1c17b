"""The echo backend: every output is its input record."""

from __future__ import annotations

from .backend import EchoBackend, EchoConfig

# `packflow.examples.echo:Backend`, the name `packflow run --backend` examples use.
Backend = EchoBackend

__all__ = ["Backend", "EchoBackend", "EchoConfig"]
