"""Upstream's `packflow.logger.get_logger()`: Packflow's logger, which takes loguru's call
style (`logger.info("loaded {} rows", n)`, `logger.success(...)`) and emits structlog events
(see `packflow.logging.BackendLogger`)."""

from __future__ import annotations

from typing import Any

from packflow.logging import BackendLogger, get_backend_logger

__all__ = ["BackendLogger", "get_logger"]


def get_logger(**fields: Any) -> BackendLogger:
    """A `BackendLogger` carrying `fields` on every event."""
    return get_backend_logger(**fields)
