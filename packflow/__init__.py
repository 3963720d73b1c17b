"""Packflow's SDK: write an `InferenceBackend`, configure it with a `BackendConfig`.

    from packflow import InferenceBackend

    class Backend(InferenceBackend):
        def execute(self, inputs):
            return [{"echo": row} for row in inputs]

The SDK imports nothing from the Kafka runtime (`packflow.runtime`, the repository's
`consumer/`): it runs anywhere Python does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from packflow.backend import (
    BatchResult,
    ExecutionMetrics,
    InferenceBackend,
    OutputKeysWarning,
    PreparedBatch,
)
from packflow.config import BackendConfig
from packflow.errors import (
    BackendError,
    ConfigError,
    LoaderError,
    PackflowError,
    PermanentError,
    PreprocessError,
    ProjectError,
    SampleError,
    ValidationError,
)
from packflow.preprocessors import register_preprocessor
from packflow.profiling import Profiler, StageStats
from packflow.project import PackflowProject

try:
    __version__ = _distribution_version("packflow")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BackendConfig",
    "BackendError",
    "BatchResult",
    "ConfigError",
    "ExecutionMetrics",
    "InferenceBackend",
    "LoaderError",
    "OutputKeysWarning",
    "PackflowError",
    "PackflowProject",
    "PermanentError",
    "PreparedBatch",
    "PreprocessError",
    "Profiler",
    "ProjectError",
    "SampleError",
    "StageStats",
    "ValidationError",
    "__version__",
    "register_preprocessor",
]
