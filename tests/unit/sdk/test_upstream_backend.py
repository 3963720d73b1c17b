"""`packflow.backend` as upstream lays it out: configuration, metrics, preprocessors,
validation; and `self.logger` in loguru's call style."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import structlog

from packflow import InferenceBackend
from packflow.backend import BackendConfig as FromBackend
from packflow.backend.base import InferenceBackend as FromBase
from packflow.backend.configuration import BackendConfig, InputFormats, load_backend_configuration
from packflow.backend.metrics import ExecutionMetrics, ExecutionTimes
from packflow.backend.preprocessors import (
    NumpyPreprocessor,
    PassthroughPreprocessor,
    Preprocessor,
    RecordsPreprocessor,
    get_preprocessor,
)
from packflow.backend.validation import InferenceBackendValidator
from packflow.exceptions import PreprocessorRuntimeError
from packflow.logger import get_logger
from packflow.logging import configure_logging


class Echo(InferenceBackend):
    def execute(self, inputs: Any) -> Any:
        return inputs


def test_the_module_paths_name_the_same_classes() -> None:
    assert FromBase is InferenceBackend
    assert FromBackend is BackendConfig
    import packflow

    assert packflow.BackendConfig is BackendConfig


def test_input_formats_enum_and_strings_are_one() -> None:
    assert [f.value for f in InputFormats] == ["passthrough", "records", "numpy"]
    config = BackendConfig(input_format=InputFormats.NUMPY, feature_names=["a"])
    assert config.input_format == InputFormats.NUMPY == "numpy"
    assert config.input_format is InputFormats.NUMPY
    assert BackendConfig(input_format="passthrough").input_format is InputFormats.PASSTHROUGH
    assert BackendConfig().input_format is InputFormats.RECORDS


def test_upstream_config_fields_and_defaults() -> None:
    config = BackendConfig()
    assert (
        config.verbose,
        config.rename_fields,
        config.feature_names,
        config.flatten_nested_inputs,
        config.flatten_lists,
        config.nested_field_delimiter,
        config.ignore_delimiter_collisions,
        config.output_keys,
    ) == (False, {}, [], False, False, ".", False, [])


def test_load_backend_configuration() -> None:
    class Mine(BackendConfig):
        threshold: float = 0.5

    config = load_backend_configuration(Mine, threshold=0.7, verbose=True)
    assert isinstance(config, Mine) and config.threshold == 0.7 and config.verbose
    assert load_backend_configuration().input_format == "records"


def test_metrics_read_as_upstream_and_as_a_mapping() -> None:
    backend = Echo()
    backend([{"a": 1}, {"a": 2}])
    metrics = backend.get_metrics()
    assert isinstance(metrics, ExecutionMetrics)
    times = metrics.execution_times
    assert isinstance(times, ExecutionTimes)
    assert metrics.batch_size == 2
    assert times.execute is not None and times.execute >= 0
    assert times.preprocess == times["preprocess"]
    assert times.transform_inputs is None and times.transform_outputs is None
    assert list(times) == ["preprocess", "execute"]
    assert times.total() == pytest.approx(times.preprocess + times.execute)
    assert metrics.total_execution_time >= times.total()
    dumped = metrics.model_dump()
    assert dumped["execution_times"]["transform_inputs"] is None
    assert dumped["batch_size"] == 2
    assert "transform_inputs=None" in repr(times)


def test_execution_times_built_like_upstreams() -> None:
    times = ExecutionTimes(preprocess=1.0, execute=2.0)
    assert times.total() == 3.0 and times == {"preprocess": 1.0, "execute": 2.0}


def test_preprocessor_classes() -> None:
    assert isinstance(get_preprocessor(BackendConfig(input_format="passthrough")), Preprocessor)
    assert isinstance(
        get_preprocessor(BackendConfig(input_format="passthrough")), PassthroughPreprocessor
    )
    assert isinstance(get_preprocessor(BackendConfig()), RecordsPreprocessor)
    numpy_config = BackendConfig(input_format="numpy", feature_names=["a"])
    assert isinstance(get_preprocessor(numpy_config), NumpyPreprocessor)
    records = [{"a": 1}]
    assert PassthroughPreprocessor(BackendConfig())(records) is records


def test_a_custom_preprocessor_subclass() -> None:
    class Upper(Preprocessor):
        def resolve(self) -> None:
            self.fields = self.config.feature_names

        def process(self, raw_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{f: str(r[f]).upper() for f in self.fields} for r in raw_inputs]

    upper = Upper(BackendConfig(feature_names=["a"]))
    assert upper([{"a": "x", "b": 1}]) == [{"a": "X"}]
    with pytest.raises(PreprocessorRuntimeError) as caught:
        upper([{"b": 1}])
    assert isinstance(caught.value.__cause__, KeyError)


def test_records_keep_renamed_fields_and_drop_nulls() -> None:
    backend = Echo(rename_fields={"x": "renamed"}, feature_names=["a", "b"])
    out = backend([{"x": 1, "a": 2, "b": None, "c": 3}, {"a": 4}])
    assert out == [{"renamed": 1, "a": 2}, {"a": 4}]


def test_nested_features_and_delimiter_collisions() -> None:
    records = [{"user": {"age": 30, "name": "n"}, "id": 1}]
    assert Echo(feature_names=["user.age", "id"])(records) == [{"user": {"age": 30}, "id": 1}]
    flat = Echo(flatten_nested_inputs=True, feature_names=["user.age"])
    assert flat(records) == [{"user.age": 30}]
    colliding = [{"user.age": 1, "user": {"age": 30}}]
    with pytest.raises(PreprocessorRuntimeError, match="delimiter"):
        Echo(feature_names=["user.age"])(colliding)
    ignoring = Echo(feature_names=["user.age"], ignore_delimiter_collisions=True)
    assert ignoring(colliding) == [{"user": {"age": 1}}]
    # Without nested paths a key with the delimiter is just a key.
    assert Echo(feature_names=["id"])([{"a.b": 1, "id": 2}]) == [{"id": 2}]


def test_numpy_with_nested_features() -> None:
    class Seen(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            self.seen = inputs
            return [{"n": int(v)} for v in inputs[:, 0]]

    backend = Seen(input_format="numpy", feature_names=["p.v", "a"])
    assert backend([{"p": {"v": 1}, "a": 2}]) == [{"n": 1}]
    assert isinstance(backend.seen, np.ndarray) and backend.seen.tolist() == [[1, 2]]


def test_inference_backend_validator() -> None:
    assert InferenceBackendValidator(Echo()).run({"a": 1}) == {"a": 1}


@pytest.fixture
def events() -> Any:
    saved = structlog.get_config()
    configure_logging("DEBUG", force=True)
    with structlog.testing.capture_logs() as captured:
        yield captured
    structlog.configure(**saved)


def test_logger_takes_loguru_style(events: list[dict[str, Any]]) -> None:
    class Loud(Echo):
        def initialize(self) -> None:
            self.logger.info("loaded {} rows in {:.1f} s", 3, 0.25)  # noqa: PLE1205 (loguru style)
            self.logger.success("ready")
            self.logger.info("user {name}", name="ann")
            self.logger.debug("plain_event", n=1)
            self.logger.warning("braces {not a format", n=2)
            self.logger.trace("tracing {}", 1)
            try:
                raise ValueError("bad")
            except ValueError:
                self.logger.exception("caught {}", "it")  # noqa: PLE1205

    Loud()
    mine = [e for e in events if e["event"] != "backend_initialized"]
    assert [(e["event"], e["log_level"]) for e in mine] == [
        ("loaded 3 rows in 0.2 s", "info"),
        ("ready", "info"),
        ("user ann", "info"),
        ("plain_event", "debug"),
        ("braces {not a format", "warning"),
        ("tracing 1", "debug"),
        ("caught it", "error"),
    ]
    assert all(e["backend"] == "Loud" for e in mine)
    assert mine[1]["loguru_level"] == "SUCCESS"
    assert mine[2]["name"] == "ann"
    assert mine[3]["n"] == 1
    assert "ValueError: bad" in mine[6]["exception"]


def test_get_logger_and_bind(events: list[dict[str, Any]]) -> None:
    logger = get_logger().bind(model="m")
    logger.log("INFO", "n={}", 5)
    logger.log(40, "err")
    assert [(e["event"], e["log_level"], e["model"]) for e in events] == [
        ("n=5", "info", "m"),
        ("err", "error", "m"),
    ]
