"""The backend SDK, at upstream Packflow's module paths: `packflow.backend.base`
(`InferenceBackend`), `.configuration` (`BackendConfig`, `InputFormats`), `.metrics`
(`ExecutionMetrics`, `ExecutionTimes`), `.preprocessors` and `.validation`."""

from __future__ import annotations

from packflow.backend.base import (
    BatchResult,
    InferenceBackend,
    OutputKeysWarning,
    PreparedBatch,
    Stage,
)
from packflow.backend.metrics import ExecutionMetrics, ExecutionTimes
from packflow.config import BackendConfig, InputFormats

__all__ = [
    "BackendConfig",
    "BatchResult",
    "ExecutionMetrics",
    "ExecutionTimes",
    "InferenceBackend",
    "InputFormats",
    "OutputKeysWarning",
    "PreparedBatch",
    "Stage",
]
