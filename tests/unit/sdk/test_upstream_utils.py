"""`packflow.utils`: upstream's output normalisation and record helpers."""

from __future__ import annotations

import base64
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest

from packflow.utils import (
    check_delimiter_collisions,
    ensure_native_types,
    ensure_valid_output,
    flatten_dict,
    flatten_records,
    get_nested_field,
    get_nested_field_direct,
    records_to_ndarray,
    set_nested_field_direct,
)
from packflow.utils.normalize import ensure_native_types as from_normalize


def test_numpy_values_become_native() -> None:
    value = {"a": np.int64(3), "b": (np.float32(0.5), np.array([1, 2])), "c": {np.bool_(True)}}
    out = ensure_native_types(value)
    assert out == {"a": 3, "b": [0.5, [1, 2]], "c": [True]}
    assert type(out["a"]) is int and type(out["b"][0]) is float and type(out["c"][0]) is bool
    assert from_normalize is ensure_native_types


def test_native_values_are_returned_as_they_are() -> None:
    for value in ("s", 1, 1.5, True, None):
        assert ensure_native_types(value) is value


def test_an_unknown_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is not supported"):
        ensure_native_types({"x": object()})


def test_ensure_valid_output_wraps_rows() -> None:
    assert ensure_valid_output(np.array([[2], [4]]), parent_key="doubled") == [
        {"doubled": 2},
        {"doubled": 4},
    ]
    assert ensure_valid_output(np.array([0, 1])) == [{"output": 0}, {"output": 1}]
    assert ensure_valid_output([{"a": np.float64(1.0)}, [1, 2]]) == [
        {"a": 1.0},
        {"output": [1, 2]},
    ]


def test_no_optional_library_is_imported() -> None:
    probe = (
        "import sys, numpy as np; from packflow.utils import ensure_valid_output;"
        "ensure_valid_output([np.int8(1), {'a': [1]}]);"
        "print(sorted({'pandas', 'torch', 'PIL'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class FakeSeries:
    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def to_list(self) -> list[Any]:
        return list(self.values)


class FakeFrame:
    def to_dict(self, orient: str) -> dict[str, Any]:
        assert orient == "split"
        return {"index": [0], "columns": ["a"], "data": [[np.int64(1)]]}


def test_pandas_values_when_pandas_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in module: the handlers look pandas up in sys.modules, never import it.
    fake = types.ModuleType("pandas")
    fake.Series = FakeSeries  # type: ignore[attr-defined]
    fake.DataFrame = FakeFrame  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    assert ensure_native_types(FakeSeries([np.int64(1), 2])) == [1, 2]
    assert ensure_native_types(FakeFrame()) == {"index": [0], "columns": ["a"], "data": [[1]]}


def test_torch_values_when_torch_is_installed() -> None:
    torch = pytest.importorskip("torch")
    assert ensure_native_types(torch.tensor([1.5])) == 1.5
    assert ensure_native_types(torch.tensor([[1, 2]], dtype=torch.int64)) == [[1, 2]]
    assert ensure_valid_output(torch.tensor([[1.0], [2.0]])) == [{"output": 1.0}, {"output": 2.0}]


def test_pil_images_when_pillow_is_installed() -> None:
    image_module = pytest.importorskip("PIL.Image")
    encoded = ensure_native_types(image_module.new("RGB", (2, 2)))
    assert base64.b64decode(encoded).startswith(b"\x89PNG")


NESTED = {"a": {"b": 1, "c": [1, 2], "e": {}}, "d": "x"}


def test_flatten_dict_and_records() -> None:
    assert flatten_dict(NESTED) == {"a.b": 1, "a.c": [1, 2], "a.e": {}, "d": "x"}
    assert flatten_dict(NESTED, delimiter=":", flatten_lists=True) == {
        "a:b": 1,
        "a:c:0": 1,
        "a:c:1": 2,
        "a:e": {},
        "d": "x",
    }
    assert flatten_records([NESTED, {"z": 1}]) == [flatten_dict(NESTED), {"z": 1}]
    with pytest.raises(TypeError):
        flatten_dict([NESTED])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        flatten_records(NESTED)  # type: ignore[arg-type]


def test_nested_fields() -> None:
    assert get_nested_field({"foo": {"bar": 5}}, "foo.bar") == 5
    assert get_nested_field({"foo": {"bar": 5}}, "foo:bar", delimiter=":") == 5
    assert get_nested_field({"foo.bar": 1, "foo": {"bar": 5}}, "foo.bar") == 1
    assert get_nested_field({"a": {"b.c": 1}}, "a.b.c") == 1
    assert get_nested_field({"foo": 1}, "foo.bar") is None
    assert get_nested_field_direct({"a": {"b": {"c": 3}}}, "a.b.c") == 3
    assert get_nested_field_direct({"a": {"b.c": 1}}, "a.b.c") is None
    out: dict[str, Any] = {"a": {"x": 0}, "n": 1}
    set_nested_field_direct(out, "a.b.c", 2)
    set_nested_field_direct(out, "n.m", 3)  # runs into a non-dict: nothing stored
    assert out == {"a": {"x": 0, "b": {"c": 2}}, "n": 1}


def test_records_to_ndarray() -> None:
    records = [{"num": 1, "p": {"q": 2}}, {"num": 3, "p": {"q": 4}}]
    array = records_to_ndarray(records, feature_names=["num", "p.q"])
    assert array.tolist() == [[1, 2], [3, 4]]
    assert records_to_ndarray(records, ["num"], dtype="float32").dtype == np.float32
    holes = records_to_ndarray([{"a": 1}, {"b": 2}], ["a"])
    assert holes.tolist() == [[1], [None]]
    with pytest.raises(ValueError):
        records_to_ndarray({"a": 1}, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="record 1"):
        records_to_ndarray([{"a": 1}, 2], ["a"])  # type: ignore[list-item]


def test_check_delimiter_collisions() -> None:
    assert check_delimiter_collisions({"a.b": 1, "c": {"d.e": 2, "f": 3}}, ".") == [
        "a.b",
        "c.d.e",
    ]
    assert check_delimiter_collisions({"a": {"b": 1}}, ".") == []


def test_type_handlers() -> None:
    from packflow.utils.normalize.handlers import NumpyTypeHandler, PandasSeriesHandler
    from packflow.utils.normalize.normalize import HANDLERS

    numpy_handler = NumpyTypeHandler()
    assert numpy_handler.available() and numpy_handler.package_name == "numpy"
    assert numpy_handler.is_type(np.float32(1)) and numpy_handler.convert(np.arange(2)) == [0, 1]
    assert [type(h).__name__ for h in HANDLERS][:3] == [
        "NumpyTypeHandler",
        "PandasSeriesHandler",
        "PandasDataFrameHandler",
    ]
    if "pandas" not in sys.modules:
        assert not PandasSeriesHandler().handles([1])
