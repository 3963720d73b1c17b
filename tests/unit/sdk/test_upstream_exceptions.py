"""Upstream's seven exception classes are Packflow errors, raised where upstream raises them."""

from __future__ import annotations

from typing import Any

import pytest

from packflow import InferenceBackend, PackflowError
from packflow.errors import BackendError, ConfigError, LoaderError, PreprocessError, ValidationError
from packflow.exceptions import (
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PreprocessorInitError,
    PreprocessorRuntimeError,
    UnknownPreprocessorError,
)
from packflow.loaders import LocalLoader
from packflow.preprocessors import get_preprocessor

UPSTREAM = [
    InferenceBackendInitializationError,
    InferenceBackendLoadError,
    InferenceBackendRuntimeError,
    InferenceBackendValidationError,
    PreprocessorInitError,
    PreprocessorRuntimeError,
    UnknownPreprocessorError,
]


@pytest.mark.parametrize("error", UPSTREAM, ids=lambda e: e.__name__)
def test_each_is_a_packflow_error_raisable_with_one_message(error: type[Exception]) -> None:
    assert issubclass(error, PackflowError)
    with pytest.raises(error, match="^boom$"):
        raise error("boom")


def test_the_family_tree() -> None:
    assert issubclass(ValidationError, InferenceBackendValidationError)
    assert issubclass(LoaderError, InferenceBackendLoadError)
    assert issubclass(PreprocessError, PreprocessorRuntimeError)
    assert issubclass(PreprocessorRuntimeError, InferenceBackendRuntimeError)
    assert issubclass(InferenceBackendRuntimeError, BackendError)
    assert issubclass(InferenceBackendInitializationError, BackendError)
    assert issubclass(PreprocessorInitError, ConfigError)
    assert issubclass(UnknownPreprocessorError, ConfigError)


class Echo(InferenceBackend):
    def execute(self, inputs: Any) -> Any:
        return inputs


def test_validate_raises_an_inference_backend_validation_error() -> None:
    class Short(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs[:1]

    with pytest.raises(InferenceBackendValidationError) as caught:
        Short().validate([{"a": 1}, {"a": 2}])
    assert caught.value.rule == "row_count"  # type: ignore[attr-defined]


def test_a_failing_initialize_is_an_initialization_error() -> None:
    class Broken(Echo):
        def initialize(self) -> None:
            raise OSError("no weights")

    with pytest.raises(InferenceBackendInitializationError) as caught:
        Broken()
    assert caught.value.stage == "initialize"
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize("stage", ["transform_inputs", "execute", "transform_outputs"])
def test_a_failing_stage_is_a_runtime_error_naming_it(stage: str) -> None:
    def fail(self: Any, data: Any) -> Any:
        raise ZeroDivisionError("x")

    backend = type("Failing", (Echo,), {stage: fail})()
    with pytest.raises(InferenceBackendRuntimeError, match=rf"Failing\.{stage}\(\) failed") as e:
        backend([{"a": 1}])
    assert e.value.stage == stage
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_numpy_without_feature_names_is_a_preprocessor_init_error() -> None:
    with pytest.raises(PreprocessorInitError, match="feature_names"):
        Echo(input_format="numpy")


def test_a_missing_numpy_field_is_a_preprocessor_runtime_error() -> None:
    backend = Echo(input_format="numpy", feature_names=["a"])
    with pytest.raises(PreprocessorRuntimeError):
        backend([{"b": 1}])
    with pytest.raises(InferenceBackendRuntimeError):  # the pipeline's error, as upstream
        backend([{"b": 1}])


def test_an_unknown_preprocessor() -> None:
    config = Echo().config.model_copy(update={"input_format": "parquet"})
    with pytest.raises(UnknownPreprocessorError):
        get_preprocessor(config)


def test_a_backend_that_cannot_load_is_a_load_error(tmp_path: Any) -> None:
    with pytest.raises(InferenceBackendLoadError):
        LocalLoader("missing:Backend", base_dir=tmp_path).load()
