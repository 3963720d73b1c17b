"""Loading a backend, at upstream Packflow's module paths: `packflow.loaders.base`
(`InferenceBackendLoader`), `.local` (`LocalLoader`), `.module` (`ModuleLoader`), `.config`
(`PackflowConfig`, the contents of `packflow.yaml`) and `.utils`."""

from __future__ import annotations

from packflow.loaders.base import (
    InferenceBackendLoader,
    LocalLoader,
    ModuleLoader,
    PackflowConfig,
    load_backend,
)

__all__ = [
    "InferenceBackendLoader",
    "LocalLoader",
    "ModuleLoader",
    "PackflowConfig",
    "load_backend",
]
