"""Upstream Packflow's exception names, at upstream's module path.

They are classes of Packflow's one error family (`packflow.errors`, rooted at
`PackflowError`): `except InferenceBackendValidationError` catches what `validate()` raises,
`except InferenceBackendRuntimeError` a failing pipeline stage, and so on.
"""

from __future__ import annotations

from packflow.errors import (
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PackflowError,
    PreprocessorInitError,
    PreprocessorRuntimeError,
    UnknownPreprocessorError,
)

__all__ = [
    "InferenceBackendInitializationError",
    "InferenceBackendLoadError",
    "InferenceBackendRuntimeError",
    "InferenceBackendValidationError",
    "PackflowError",
    "PreprocessorInitError",
    "PreprocessorRuntimeError",
    "UnknownPreprocessorError",
]
