"""The pipeline rules of `InferenceBackend`, starting from the user docs' own example."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from packflow import BackendConfig, BackendError, InferenceBackend

# The example of the "Creating a Custom Backend" page, as users copy it...
SEED_EXAMPLE = """
from packflow import InferenceBackend
class Backend(InferenceBackend):
    def initialize(self, *args, **kwargs):
        self.logger.info("Loading model weights")
        self.logger.info("Placing model on GPUs")
        # ... etc
"""
# ...and the execute() a user adds to make it a backend.
USER_EXECUTE = """
    def execute(self, inputs):
        return [{"n": len(row)} for row in inputs]
"""


def seed_backend_class() -> type[InferenceBackend]:
    namespace: dict[str, Any] = {}
    exec(SEED_EXAMPLE + USER_EXECUTE, namespace)  # noqa: S102 - the docs' example, verbatim
    backend_class: type[InferenceBackend] = namespace["Backend"]
    return backend_class


def test_seed_example_runs_initialize_once_with_its_log_events() -> None:
    with capture_logs() as events:
        backend = seed_backend_class()()
        backend({"a": 1})
        backend([{"a": 1}, {"a": 1, "b": 2}])
    messages = [(e["event"], e["backend"]) for e in events if e["event"] != "backend_initialized"]
    assert messages == [("Loading model weights", "Backend"), ("Placing model on GPUs", "Backend")]
    assert [e["event"] for e in events].count("backend_initialized") == 1


def test_seed_example_dict_in_dict_out_list_in_list_out() -> None:
    backend = seed_backend_class()()
    assert backend({"a": 1, "b": 2}) == {"n": 2}
    assert backend([{"a": 1}, {}, {"a": 1, "b": 2, "c": 3}]) == [{"n": 1}, {"n": 0}, {"n": 3}]
    assert backend([]) == []


class Recorder(InferenceBackend):
    """Records each step's name and input, and tags the data it passes on."""

    def initialize(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.initialized = getattr(self, "initialized", 0) + 1

    def transform_inputs(self, inputs: Any) -> Any:
        self.calls.append(("transform_inputs", inputs))
        return [row["x"] for row in inputs]

    def execute(self, inputs: Any) -> Any:
        self.calls.append(("execute", inputs))
        return [x * 10 for x in inputs]

    def transform_outputs(self, outputs: Any) -> Any:
        self.calls.append(("transform_outputs", outputs))
        return [{"y": y} for y in outputs]


def test_steps_run_in_order_each_on_the_previous_output() -> None:
    backend = Recorder(feature_names=["x"])
    assert backend([{"x": 1, "noise": 0}, {"x": 2}]) == [{"y": 10}, {"y": 20}]
    assert backend.calls == [
        ("transform_inputs", [{"x": 1}, {"x": 2}]),  # after preprocess: feature_names only
        ("execute", [1, 2]),
        ("transform_outputs", [10, 20]),
    ]
    assert backend.initialized == 1
    assert list(backend.profiler.stats()) == [
        "preprocess",
        "transform_inputs",
        "execute",
        "transform_outputs",
        "total",
    ]


def test_missing_optional_steps_pass_their_input_through() -> None:
    seen = []

    class OnlyExecute(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            seen.append(inputs)
            return [{"seen": row} for row in inputs]

    backend = OnlyExecute(input_format="passthrough")
    records = [{"a": {"b": 1}}]
    assert backend(records) == [{"seen": {"a": {"b": 1}}}]
    assert seen[0] is records  # passthrough: the very list, not a copy
    assert list(backend.profiler.stats()) == ["preprocess", "execute", "total"]


def test_empty_batch_reaches_no_user_code() -> None:
    backend = Recorder()
    assert backend([]) == []
    assert backend.run_batch([]).outputs == []
    assert backend.calls == []


def test_subclass_without_execute_fails_with_a_clear_message() -> None:
    class NoExecute(InferenceBackend):
        def transform_inputs(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(BackendError, match=r"NoExecute does not define execute\(\)") as info:
        NoExecute()
    assert info.value.stage is None


def test_a_failing_step_names_backend_and_stage_and_chains_the_cause() -> None:
    class Broken(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            raise KeyError("weights")

    with pytest.raises(BackendError) as info:
        Broken()([{"a": 1}])
    assert str(info.value) == "Broken.execute() failed: KeyError: 'weights'"
    assert (info.value.backend, info.value.stage) == ("Broken", "execute")
    assert isinstance(info.value.__cause__, KeyError)


def test_a_failing_initialize_is_a_backend_error_at_construction() -> None:
    class BadInit(InferenceBackend):
        def initialize(self) -> None:
            raise FileNotFoundError("model.bin")

        def execute(self, inputs: Any) -> Any:
            return inputs

    with pytest.raises(BackendError, match=r"BadInit.initialize\(\) failed: FileNotFoundError"):
        BadInit()


def test_name_and_version_default_to_class_name_and_zero() -> None:
    class Plain(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return inputs

    class Named(Plain):
        name = "scorer"
        version = "2.1"

    class Child(Named):
        pass

    assert (Plain.name, Plain.version) == ("Plain", "0")
    assert (Named().name, Named().version) == ("scorer", "2.1")
    assert (Child.name, Child.version) == ("Child", "2.1")


def test_config_model_is_read_as_self_config() -> None:
    class Scaled(BackendConfig):
        factor: float = 2.0

    class Scaler(InferenceBackend):
        backend_config_model = Scaled

        def execute(self, inputs: Any) -> Any:
            return [{"v": row["v"] * self.config.factor} for row in inputs]  # type: ignore[attr-defined]

    assert Scaler()({"v": 2}) == {"v": 4.0}
    assert Scaler(factor=3)({"v": 2}) == {"v": 6.0}


def test_verbose_logs_each_calls_stage_times() -> None:
    backend = Recorder(verbose=True)
    with capture_logs() as events:
        backend([{"x": 1}, {"x": 2}])
    (event,) = [e for e in events if e["event"] == "backend_call"]
    assert event["batch_size"] == 2
    assert event["backend"] == "Recorder"
    assert set(event) >= {
        "preprocess_ms",
        "transform_inputs_ms",
        "execute_ms",
        "transform_outputs_ms",
        "total_ms",
    }


def test_quiet_backend_logs_no_call_events() -> None:
    backend = Recorder()
    with capture_logs() as events:
        backend([{"x": 1}])
    assert events == []


def test_ready_is_true_by_default() -> None:
    assert Recorder().ready() is True
