"""Backend configuration at upstream Packflow's module path (`packflow.config` holds it)."""

from __future__ import annotations

from packflow.config import (
    BackendConfig,
    Field,
    InputFormats,
    load_backend_configuration,
    merge_config,
    resolve_config,
)

__all__ = [
    "BackendConfig",
    "Field",
    "InputFormats",
    "load_backend_configuration",
    "merge_config",
    "resolve_config",
]
