"""The three input formats, custom preprocessors, and the errors of each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from packflow import BackendConfig, ConfigError, InferenceBackend, PreprocessError
from packflow.exceptions import PreprocessorRuntimeError
from packflow.preprocessors import (
    _REGISTRY,
    NumpyPreprocessor,
    RecordsPreprocessor,
    flatten_record,
    get_preprocessor,
    input_formats,
    register_preprocessor,
)


def preprocess(records: list[Any], **config: Any) -> Any:
    return get_preprocessor(BackendConfig(**config))(records)


NESTED = {"foo": {"bar": 0, "baz": [1, 2]}, "fizz": {"buzz": 2}, "top": "t"}


def test_passthrough_returns_the_batch_itself() -> None:
    records = [{"a": {"b": 1}}, {"c": 2}]
    assert preprocess(records, input_format="passthrough") is records


def test_records_without_options_returns_the_batch_itself() -> None:
    records = [{"a": 1}]
    assert preprocess(records) is records


def test_records_select_and_order_feature_names() -> None:
    records = [{"c": 3, "a": 1, "b": 2}, {"b": 5}]
    out = preprocess(records, feature_names=["b", "a"])
    assert out == [{"b": 2, "a": 1}, {"b": 5}]  # a missing feature is simply absent
    assert [list(r) for r in out] == [["b", "a"], ["b"]]
    assert records[0] == {"c": 3, "a": 1, "b": 2}  # input untouched


def test_records_rename_then_select() -> None:
    out = preprocess(
        [{"foo": 0, "bar": 1, "other": 2}],
        rename_fields={"bar": "feature_0", "foo": "feature_1"},
        feature_names=["feature_0", "feature_1"],
    )
    assert out == [{"feature_0": 1, "feature_1": 0}]


def test_records_rename_alone_keeps_other_fields() -> None:
    assert preprocess([{"a": 1, "b": 2}], rename_fields={"a": "x"}) == [{"x": 1, "b": 2}]


def test_records_flatten_with_delimiter() -> None:
    out = preprocess([NESTED], flatten_nested_inputs=True, nested_field_delimiter=":")
    assert out == [{"foo:bar": 0, "foo:baz": [1, 2], "fizz:buzz": 2, "top": "t"}]


def test_records_flatten_lists() -> None:
    out = preprocess([NESTED], flatten_nested_inputs=True, flatten_lists=True)
    assert out == [{"foo.bar": 0, "foo.baz.0": 1, "foo.baz.1": 2, "fizz.buzz": 2, "top": "t"}]


def test_records_flatten_rename_select_as_in_the_upstream_docs() -> None:
    out = preprocess(
        [{"foo": {"bar": 0, "baz": [1]}, "fizz": {"buzz": 2}}],
        flatten_nested_inputs=True,
        nested_field_delimiter=":",
        rename_fields={"foo:bar": "feature_1", "fizz:buzz": "feature_2"},
        feature_names=["feature_1", "feature_2"],
    )
    assert out == [{"feature_1": 0, "feature_2": 2}]


def test_flatten_keeps_empty_containers() -> None:
    assert flatten_record({"a": {}, "b": [], "c": {"d": {}}}, ".", True) == {
        "a": {},
        "b": [],
        "c.d": {},
    }


def test_records_nested_paths_without_flattening_keep_the_structure() -> None:
    out = preprocess([NESTED, {"foo": 5}], feature_names=["foo.bar", "top"])
    assert out == [{"foo": {"bar": 0}, "top": "t"}, {}]


def test_records_literal_key_wins_over_a_path_when_collisions_are_ignored() -> None:
    record = {"a.b": "literal", "a": {"b": "nested"}}
    out = preprocess([record], feature_names=["a.b"], ignore_delimiter_collisions=True)
    assert out == [{"a": {"b": "literal"}}]


def test_records_key_with_the_delimiter_fails_its_row_when_paths_are_used() -> None:
    with pytest.raises(PreprocessError) as caught:
        preprocess([{"x": {"b": 1}}, {"a.b": "literal"}], feature_names=["a.b"])
    assert (caught.value.row, caught.value.field) == (1, "a.b")
    assert isinstance(caught.value, PreprocessorRuntimeError)


def test_records_nested_rename_copies_the_value() -> None:
    out = preprocess([{"user": {"age": 30}, "id": 1}], rename_fields={"user.age": "age"})
    assert out == [{"user": {"age": 30}, "id": 1, "age": 30}]


def test_numpy_columns_in_feature_order() -> None:
    out = preprocess(
        [{"a": 1.0, "b": 2.0, "c": 9.0}, {"a": 3.0, "b": 4.0, "c": 9.0}],
        input_format="numpy",
        feature_names=["b", "a"],
    )
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[2.0, 1.0], [4.0, 3.0]])


def test_numpy_single_feature_is_a_column() -> None:
    out = preprocess([{"a": 1.5}, {"a": 2.5}], input_format="numpy", feature_names=["a"])
    np.testing.assert_array_equal(out, [[1.5], [2.5]])


def test_numpy_keeps_integer_and_string_dtypes() -> None:
    ints = preprocess([{"a": 1, "b": 2}], input_format="numpy", feature_names=["a", "b"])
    assert ints.dtype == np.int64
    np.testing.assert_array_equal(ints, [[1, 2]])
    words = preprocess([{"w": "x"}, {"w": "yz"}], input_format="numpy", feature_names=["w"])
    assert words.tolist() == [["x"], ["yz"]]


def test_numpy_mixed_numbers_after_float_first_row() -> None:
    out = preprocess(
        [{"a": 1.5, "b": 0.5}, {"a": 2, "b": True}], input_format="numpy", feature_names=["a", "b"]
    )
    np.testing.assert_array_equal(out, [[1.5, 0.5], [2.0, 1.0]])


def test_numpy_rename_and_nested_paths() -> None:
    out = preprocess(
        [{"foo": {"bar": 0, "baz": 1}}],
        input_format="numpy",
        feature_names=["feature_0", "foo:baz"],
        rename_fields={"foo:bar": "feature_0"},
        nested_field_delimiter=":",
    )
    np.testing.assert_array_equal(out, [[0, 1]])


def test_numpy_with_flattening() -> None:
    out = preprocess(
        [{"p": {"q": [7.0, 8.0]}}],
        input_format="numpy",
        feature_names=["p.q.1", "p.q.0"],
        flatten_nested_inputs=True,
        flatten_lists=True,
    )
    np.testing.assert_array_equal(out, [[8.0, 7.0]])


@pytest.mark.parametrize(
    ("records", "message", "row", "field"),
    [
        ([{"a": 1.0, "b": 1.0}, {"a": 2.0}], "record 1: has no field 'b'", 1, "b"),
        (
            [{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": None}],
            "record 1: holds null for field 'b'",
            1,
            "b",
        ),
        ([{"b": 1, "a": 2}, {"a": 1}, {"b": 2}], "record 1: has no field 'b'", 1, "b"),
        ([{"a": 1.0, "b": 1.0}, [1.0, 2.0]], "record 1: is list, not a dict", 1, None),
    ],
)
def test_numpy_missing_feature_names_record_and_field(
    records: list[Any], message: str, row: int, field: str | None
) -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess(records, input_format="numpy", feature_names=["a", "b"])
    assert str(info.value) == message
    assert (info.value.row, info.value.field, info.value.stage) == (row, field, "preprocess")


def test_numpy_missing_renamed_feature_names_the_source_field() -> None:
    with pytest.raises(PreprocessError) as info:
        preprocess(
            [{"x": 1.0}], input_format="numpy", feature_names=["f"], rename_fields={"y": "f"}
        )
    assert str(info.value) == "record 0: has no field 'y' (feature 'f')"


def test_preprocess_error_through_the_backend_names_the_backend() -> None:
    class Model(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return [{"s": float(v)} for v in inputs[:, 0]]

    backend = Model(input_format="numpy", feature_names=["a"])
    with pytest.raises(PreprocessError) as info:
        backend([{"a": 1.0}, {"b": 2.0}])
    assert (info.value.backend, info.value.row, info.value.field) == ("Model", 1, "a")


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(saved)


@pytest.mark.usefixtures("registry")
def test_register_a_custom_preprocessor_by_name() -> None:
    @register_preprocessor("columns")
    class Columns:
        def __init__(self, config: BackendConfig) -> None:
            self.names = config.feature_names

        def __call__(self, records: list[dict[str, Any]]) -> dict[str, list[Any]]:
            return {n: [r[n] for r in records] for n in self.names}

    class Model(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            return [{"total": a + b} for a, b in zip(inputs["a"], inputs["b"], strict=True)]

    assert "columns" in input_formats()
    backend = Model(input_format="columns", feature_names=["a", "b"])
    assert backend([{"a": 1, "b": 2}, {"a": 3, "b": 4}]) == [{"total": 3}, {"total": 7}]


@pytest.mark.usefixtures("registry")
def test_register_a_factory_function_and_replace() -> None:
    register_preprocessor(
        "upper",
        lambda config: lambda records: [{k.upper(): v for k, v in r.items()} for r in records],
    )
    assert preprocess([{"a": 1}], input_format="upper") == [{"A": 1}]
    with pytest.raises(ConfigError, match="'upper' is already registered; pass replace=True"):
        register_preprocessor("upper", lambda config: list)
    register_preprocessor("upper", lambda config: lambda records: ["replaced"], replace=True)
    assert preprocess([{"a": 1}], input_format="upper") == ["replaced"]


def test_register_needs_a_name() -> None:
    with pytest.raises(ConfigError, match="'' is not a name"):
        register_preprocessor("", lambda config: list)


def test_builtin_classes_are_registered() -> None:
    assert _REGISTRY["records"] is RecordsPreprocessor
    assert _REGISTRY["numpy"] is NumpyPreprocessor
    assert input_formats() == ("numpy", "passthrough", "records")


def test_numpy_keeps_a_real_nan() -> None:
    out = preprocess([{"a": 1.0}, {"a": float("nan")}], input_format="numpy", feature_names=["a"])
    assert out[0, 0] == 1.0
    assert np.isnan(out[1, 0])
