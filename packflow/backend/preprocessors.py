"""Preprocessors at upstream Packflow's module path (`packflow.preprocessors` holds them)."""

from __future__ import annotations

from packflow.preprocessors import (
    NumpyPreprocessor,
    PassthroughPreprocessor,
    Preprocessor,
    PreprocessorConfig,
    PreprocessorFactory,
    RecordsPreprocessor,
    get_preprocessor,
    input_formats,
    register_preprocessor,
)

__all__ = [
    "NumpyPreprocessor",
    "PassthroughPreprocessor",
    "Preprocessor",
    "PreprocessorConfig",
    "PreprocessorFactory",
    "RecordsPreprocessor",
    "get_preprocessor",
    "input_formats",
    "register_preprocessor",
]
