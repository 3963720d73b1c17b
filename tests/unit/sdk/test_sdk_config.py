"""BackendConfig: fields, sources and their precedence, and errors that name the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from packflow import BackendConfig, ConfigError, InferenceBackend
from packflow.config import Field, merge_config, resolve_config
from packflow.loaders import InferenceBackendLoader


class ThresholdConfig(BackendConfig):
    threshold: float  # required: no default
    labels: dict[str, str] = Field(default_factory=lambda: {"pos": "yes", "neg": "no"})


class ThresholdBackend(InferenceBackend):
    backend_config_model = ThresholdConfig

    def execute(self, inputs: Any) -> Any:
        return [{"hit": row["p"] >= self.config.threshold} for row in inputs]  # type: ignore[attr-defined]


def test_defaults() -> None:
    config = BackendConfig()
    assert config.model_dump() == {
        "verbose": False,
        "input_format": "records",
        "rename_fields": {},
        "feature_names": [],
        "flatten_nested_inputs": False,
        "flatten_lists": False,
        "nested_field_delimiter": ".",
        "ignore_delimiter_collisions": False,
        "output_keys": [],
    }


def test_required_field_missing_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        ThresholdBackend()
    assert info.value.fields == ("threshold",)
    assert str(info.value) == (
        "invalid config for ThresholdBackend (ThresholdConfig): threshold: required, but not given"
    )


def test_required_field_given_by_keyword() -> None:
    backend = ThresholdBackend(threshold=0.7)
    assert backend.config.threshold == 0.7  # type: ignore[attr-defined]
    assert backend([{"p": 0.69}, {"p": 0.7}]) == [{"hit": False}, {"hit": True}]


PROJECT_YAML = """
name: thresholds
version: 1.2.0
inference_backend: model.py:Backend
backend_config:
  threshold: 0.9
  labels: {pos: "1"}
"""
MODEL_PY = """
from test_sdk_config import ThresholdBackend as Backend
"""


@pytest.fixture
def project(write: Callable[[str, str], Path], tmp_path: Path) -> Path:
    write("proj/packflow.yaml", PROJECT_YAML)
    write("proj/model.py", MODEL_PY)
    return tmp_path / "proj"


def test_required_field_given_by_packflow_yaml(project: Path) -> None:
    backend = InferenceBackendLoader.from_project(project)
    assert backend.config.threshold == 0.9  # type: ignore[attr-defined]
    # a given dict replaces the model's default, as in pydantic
    assert backend.config.labels == {"pos": "1"}  # type: ignore[attr-defined]


def test_keyword_wins_over_packflow_yaml(project: Path) -> None:
    backend = InferenceBackendLoader.from_project(project, threshold=0.1, labels={"neg": "0"})
    assert backend.config.threshold == 0.1  # type: ignore[attr-defined]
    # dicts given by both sources merge key by key
    assert backend.config.labels == {"pos": "1", "neg": "0"}  # type: ignore[attr-defined]


def test_invalid_value_names_field_and_problem() -> None:
    with pytest.raises(ConfigError) as info:
        ThresholdBackend(threshold="high", verbose="sometimes")
    assert info.value.fields == ("verbose", "threshold")
    message = str(info.value)
    assert "threshold: Input should be a valid number" in message
    assert "(got 'high')" in message
    assert "verbose: Input should be a valid boolean" in message


def test_unknown_field_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        ThresholdBackend(threshold=1, feature_name=["x"])
    assert info.value.fields == ("feature_name",)
    assert "feature_name: unknown field; the fields of ThresholdConfig are: verbose," in str(
        info.value
    )


def test_unknown_input_format_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        BackendConfig.model_validate({})  # valid
        resolve_config(BackendConfig, {"input_format": "csv"}, subject="X")
    assert str(info.value) == (
        "invalid config for X (BackendConfig): input_format: unknown input format 'csv'; "
        "known: numpy, passthrough, records"
    )


def test_numpy_without_feature_names_fails_at_construction() -> None:
    with pytest.raises(ConfigError) as info:
        ThresholdBackend(threshold=1, input_format="numpy")
    assert info.value.fields == ("feature_names",)
    assert "input_format 'numpy' needs feature_names" in str(info.value)


def test_feature_renamed_away_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(
            BackendConfig, {"rename_fields": {"a": "b"}, "feature_names": ["a"]}, subject="X"
        )
    assert info.value.problems == (
        (
            "feature_names",
            "lists fields that rename_fields renames ('a' -> 'b'); list their new names",
        ),
    )


def test_repeated_names_are_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(
            BackendConfig,
            {"feature_names": ["a", "b", "a"], "output_keys": ["k", "k"]},
            subject="X",
        )
    assert info.value.problems == (
        ("feature_names", "names repeated: a"),
        ("output_keys", "names repeated: k"),
    )


def test_empty_delimiter_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(BackendConfig, {"nested_field_delimiter": ""}, subject="X")
    assert info.value.fields == ("nested_field_delimiter",)
    assert "at least 1 character" in str(info.value)


def test_config_instance_gives_defaults_that_keywords_override() -> None:
    class Preset(InferenceBackend):
        backend_config_model = BackendConfig(input_format="numpy", feature_names=["a", "b"])

        def execute(self, inputs: Any) -> Any:
            return [{"sum": float(v)} for v in inputs.sum(axis=1)]

    assert Preset()([{"a": 1.0, "b": 2.0}]) == [{"sum": 3.0}]
    assert Preset(feature_names=["a"])([{"a": 1.0, "b": 2.0}]) == [{"sum": 1.0}]


def test_backend_config_model_must_be_a_backend_config() -> None:
    class Wrong(InferenceBackend):
        backend_config_model = dict  # type: ignore[assignment]

        def execute(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(ConfigError) as info:
        Wrong()
    assert info.value.fields == ("backend_config_model",)
    assert "must be a BackendConfig subclass, got <class 'dict'>" in str(info.value)


def test_merge_config_merges_dicts_and_replaces_the_rest() -> None:
    base = {"a": {"x": 1, "y": {"deep": 1}}, "l": [1, 2], "s": "keep"}
    override = {"a": {"y": {"deeper": 2}, "z": 3}, "l": [3]}
    assert merge_config(base, override) == {
        "a": {"x": 1, "y": {"deep": 1, "deeper": 2}, "z": 3},
        "l": [3],
        "s": "keep",
    }
    assert base["a"] == {"x": 1, "y": {"deep": 1}}  # inputs untouched
