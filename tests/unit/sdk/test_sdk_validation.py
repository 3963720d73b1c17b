"""Validation: each rule, batch-level and per row, and what its error names."""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import numpy as np
import orjson
import pytest

from packflow import InferenceBackend, OutputKeysWarning, ValidationError
from packflow.validation import ArrayRows, Rule, check_batch, check_inputs, row_failures


class Returns(InferenceBackend):
    """Returns whatever `make(inputs)` builds: a stand-in for any backend's outputs."""

    def __init__(self, make: Any, **config: Any) -> None:
        self.make = make
        super().__init__(**config)

    def execute(self, inputs: Any) -> Any:
        return self.make(inputs)


def echo() -> Returns:
    return Returns(lambda rows: [dict(r) for r in rows])


def test_validate_returns_outputs_dict_for_dict_list_for_list() -> None:
    assert echo().validate({"a": 1}) == {"a": 1}
    assert echo().validate([{"a": 1}, {"b": [1, "x", None]}]) == [{"a": 1}, {"b": [1, "x", None]}]


@pytest.mark.parametrize("bad", [5, "text", ({"a": 1},), None])
def test_input_must_be_dict_or_list(bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        echo().validate(bad)
    assert (info.value.rule, info.value.row) == ("input_type", None)
    assert info.value.value is bad
    assert (
        f"batch failed rule 'input_type': input is {type(bad).__name__}; give a dict or a list"
        in str(info.value)
    )


def test_input_rows_must_be_dicts_and_the_row_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        echo()([{"a": 1}, {"b": 2}, ["c"]])
    assert str(info.value) == (
        "row 2 failed rule 'input_type': input row is list, not a dict (value: ['c'])"
    )
    assert (info.value.rule, info.value.row, info.value.value) == ("input_type", 2, ["c"])


def test_output_must_be_a_list() -> None:
    backend = Returns(lambda rows: {"not": "a list"})
    with pytest.raises(ValidationError) as info:
        backend.validate([{"a": 1}])
    assert info.value.rule == "output_type"
    assert info.value.row is None
    assert "the pipeline returned dict; it must return a list" in str(info.value)
    with pytest.raises(ValidationError, match="output_type"):
        backend([{"a": 1}])  # the same rule guards a plain call


def test_one_output_per_input_row() -> None:
    backend = Returns(lambda rows: rows[:-1])
    with pytest.raises(ValidationError) as info:
        backend.validate([{"a": 1}, {"a": 2}, {"a": 3}])
    assert str(info.value) == (
        "batch failed rule 'row_count': 3 input rows gave 2 outputs; a backend returns exactly "
        "one output per input row (value: 2)"
    )
    with pytest.raises(ValidationError, match="row_count"):
        backend.run_batch([{"a": 1}])


def test_output_rows_must_be_dicts() -> None:
    backend = Returns(lambda rows: [{"ok": 1}, 0.5])
    with pytest.raises(ValidationError) as info:
        backend.validate([{}, {}])
    assert str(info.value) == (
        "row 1 failed rule 'row_type': output row is float, not a dict (value: 0.5)"
    )


def test_numpy_values_are_not_json_serializable() -> None:
    backend = Returns(lambda rows: [{"score": np.float64(0.25)} for _ in rows])
    with pytest.raises(ValidationError) as info:
        backend.validate({"x": 1})
    assert info.value.rule == "json_serializable"
    assert info.value.row == 0
    assert info.value.value == np.float64(0.25)
    assert str(info.value) == (
        "row 0 failed rule 'json_serializable': score: numpy.float64 is not JSON-serializable; "
        f"convert numpy values with .item() or .tolist() (value: {np.float64(0.25)!r})"
    )


@pytest.mark.parametrize(
    ("output", "detail"),
    [
        ({"v": np.array([1, 2])}, "v: numpy.ndarray is not JSON-serializable; convert"),
        ({"a": {"b": [1, np.int64(3)]}}, "a.b[1]: numpy.int64 is not JSON-serializable; convert"),
        ({"a": {1: "x"}}, "a[1]: int key; JSON object keys are strings"),
        ({2: "x"}, "key 2: int key; JSON object keys are strings"),
        ({"big": 2**70}, "big: int is not JSON-serializable (Integer exceeds 64-bit range)"),
        ({"raw": b"\x00"}, "raw: bytes is not JSON-serializable"),
        ({"s": {1, 2}}, "s: set is not JSON-serializable"),
    ],
)
def test_json_failures_name_the_path_and_type(output: dict[Any, Any], detail: str) -> None:
    (failure,) = row_failures([output])
    assert failure.rule == Rule.JSON_SERIALIZABLE
    assert failure.detail.startswith(detail)


def test_json_accepts_what_the_runtime_publishes() -> None:
    # orjson, the runtime's encoder, writes these natively.
    assert (
        row_failures([{"t": datetime.datetime(2024, 1, 1), "f": 1.5, "n": None, "l": (1, 2)}]) == []
    )


def test_run_batch_reports_only_the_bad_rows() -> None:
    def mixed(rows: list[dict[str, Any]]) -> list[Any]:
        return [{"v": np.float32(r["x"])} if r["x"] % 3 == 0 else {"v": r["x"]} for r in rows]

    result = Returns(mixed).run_batch([{"x": i} for i in range(7)])
    assert result.outputs[1] == {"v": 1}
    assert [(f.row, f.rule) for f in result.failures] == [
        (0, "json_serializable"),
        (3, "json_serializable"),
        (6, "json_serializable"),
    ]
    assert result.failed_rows == frozenset({0, 3, 6})
    assert result.ok is False
    assert Returns(lambda rows: rows).run_batch([{"x": 1}]).ok is True


def test_run_batch_times_validation() -> None:
    backend = echo()
    backend.run_batch([{"a": 1}])
    backend([{"a": 1}])
    stats = backend.profiler.stats()
    assert (stats["validate"].count, stats["total"].count) == (1, 2)


def test_check_io_warns_about_declared_output_keys_absent() -> None:
    backend = Returns(
        lambda rows: [{"score": 1.0, "label": 1}, {"score": 0.0}, {}],
        output_keys=["score", "label"],
    )
    with pytest.warns(OutputKeysWarning) as caught:
        outputs = backend.check_io([{}, {}, {}])
    assert outputs == [{"score": 1.0, "label": 1}, {"score": 0.0}, {}]
    assert [str(w.message) for w in caught] == [
        "output key 'score' (declared in output_keys) is missing from rows [2]",
        "output key 'label' (declared in output_keys) is missing from rows [1, 2]",
    ]


def test_check_io_is_silent_when_keys_are_present() -> None:
    backend = Returns(lambda rows: [{"score": 1.0}], output_keys=["score"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend.check_io({"x": 1}) == {"score": 1.0}


def test_check_io_still_raises_validation_errors() -> None:
    backend = Returns(lambda rows: [{"score": np.float64(1)}], output_keys=["score"])
    with pytest.raises(ValidationError, match="json_serializable"):
        backend.check_io([{}])


def test_check_functions_directly() -> None:
    records = [{"a": 1}]
    assert check_inputs(records) is records
    assert check_inputs({"a": 1}) == [{"a": 1}]
    outputs = [{"b": 1}]
    assert check_batch(1, outputs) is outputs


def test_nan_or_infinity_fails_its_row_naming_the_field() -> None:
    from packflow.validation import Rule, row_failures

    rows = [
        {"score": 0.5},
        {"score": float("nan")},
        {"nested": {"xs": [1.0, float("-inf")]}},
        {"missing": None},
    ]
    failures = row_failures(rows)
    assert [(f.row, f.rule) for f in failures] == [(1, Rule.FINITE_NUMBER), (2, Rule.FINITE_NUMBER)]
    assert failures[0].detail.startswith("score: nan is not a JSON number")
    assert failures[1].detail.startswith("nested.xs[1]: -inf is not a JSON number")
    assert row_failures([{"a": None}, {"b": 1.0}]) == []


# -- ArrayRows: numeric columns, checked per batch --------------------------------------------


def _as_lists_failures(rows: list[Any]) -> list[tuple[int | None, str, str, Any]]:
    return [(f.row, f.rule, f.detail, repr(f.value)) for f in row_failures(rows)]


def test_array_rows_are_rows_of_their_columns_and_fail_as_their_lists_would() -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3) / 8
    vectors[1, 2] = np.nan
    vectors[3, 0], vectors[3, 1] = np.inf, -np.inf
    cube = np.zeros((4, 2, 2))
    cube[2, 1, 0] = -np.inf
    rows = ArrayRows({"v": vectors, "cube": cube, "n": np.arange(4), "ok": np.ones(4, bool)})
    assert len(rows) == 4 and all(isinstance(r, dict) for r in rows)
    assert list(rows[0]) == ["v", "cube", "n", "ok"]
    assert rows[0]["v"].dtype == np.float64  # floats held as float64, as tolist() writes them
    plain = rows.tolist()
    assert plain[0] == {
        "v": [0.0, 0.125, 0.25],
        "cube": [[0.0, 0.0], [0.0, 0.0]],
        "n": 0,
        "ok": True,
    }
    # The same failures, rows, paths and values as the lists get from the per-row rules.
    failures = _as_lists_failures(rows)
    assert failures == _as_lists_failures(plain)
    assert [(row, rule) for row, rule, _, _ in failures] == [
        (1, "finite_number"),
        (2, "finite_number"),
        (3, "finite_number"),
    ]
    assert failures[0][2].startswith("v[2]: nan is not a JSON number")
    assert failures[1][2].startswith("cube[1][0]: -inf is not a JSON number")
    assert failures[2][2].startswith("v[0]: inf is not a JSON number")
    assert row_failures(ArrayRows({"v": np.ones((3, 2)), "x": np.zeros(3)})) == []
    scalar_nan = ArrayRows({"s": np.array([1.0, np.nan])})
    assert _as_lists_failures(scalar_nan) == _as_lists_failures(scalar_nan.tolist())


def test_array_rows_changed_after_construction_are_checked_row_by_row() -> None:
    rows = ArrayRows({"v": np.ones((4, 2))})
    rows[1]["extra"] = "x"  # a key added: its array is a numpy value again
    rows[2]["v"] = [1.0, float("nan")]  # a value replaced by a list
    rows[3] = {"v": 0.5}  # a row replaced
    failures = row_failures(rows)
    assert [(f.row, f.rule) for f in failures] == [(1, "json_serializable"), (2, "finite_number")]
    assert failures[0].detail.startswith("v: numpy.ndarray is not JSON-serializable")
    assert rows.tolist() == [{"v": [1.0, 1.0]}, rows[1], rows[2], {"v": 0.5}]
    rows.append({"v": 1.0})  # rows added: no row is checked per batch any more
    assert [f.row for f in row_failures(rows)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("columns", "error"),
    [
        ({"s": np.array(["a", "b"])}, TypeError),
        ({"o": np.array([{}, {}], dtype=object)}, TypeError),
        ({1: np.zeros(2)}, TypeError),
        ({"x": np.float64(1.0)}, ValueError),
        ({"a": np.zeros(2), "b": np.zeros(3)}, ValueError),
    ],
)
def test_array_rows_hold_numeric_columns_of_one_length(columns: Any, error: type) -> None:
    with pytest.raises(error):
        ArrayRows(columns)


class Embeds(InferenceBackend):
    """Unit vectors of its rows' `x` as ArrayRows, NaN where `x` is negative."""

    def execute(self, inputs: list[dict[str, Any]]) -> ArrayRows:
        x = np.array([r["x"] for r in inputs], dtype=np.float64)
        vectors = np.stack([np.cos(x), np.sin(x)], axis=1)
        vectors[x < 0] = np.nan
        return ArrayRows({"embedding": vectors})


def test_a_backend_returning_array_rows_gives_lists_from_run_batch_and_arrays_from_complete() -> (
    None
):
    backend = Embeds()
    records = [{"x": 0.0}, {"x": -1.0}, {"x": 2.0}]
    completed = backend.complete(backend.prepare(records))
    assert isinstance(completed.outputs, ArrayRows)
    result = backend.run_batch(records)
    assert orjson.dumps(result.outputs) == orjson.dumps(completed.outputs.tolist())
    assert type(result.outputs[0]["embedding"]) is list
    assert result.outputs[0] == {"embedding": [1.0, 0.0]}
    # A NaN row fails its row (a dead letter in the runtime), as a list of floats would.
    assert [(f.row, f.rule) for f in result.failures] == [(1, "finite_number")]
    assert [(f.row, f.rule) for f in completed.failures] == [(1, "finite_number")]
    assert backend({"x": 0.0}) == {"embedding": [1.0, 0.0]}
    with pytest.raises(ValidationError, match="embedding\\[0\\]: nan is not a JSON number"):
        backend.validate(records)
