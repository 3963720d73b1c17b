"""The echo backend: every output is its input record."""

from __future__ import annotations

from backends.echo.backend import EchoBackend, EchoConfig

# `backends.echo:Backend`, the name `packflow run --backend` examples use.
Backend = EchoBackend

__all__ = ["Backend", "EchoBackend", "EchoConfig"]
