"""Record helpers (upstream's `packflow.utils.data`): flattening, nested field access, and
records into a numpy array. The preprocessors do the same work batch-wise."""

from __future__ import annotations

from typing import Any

import numpy as np

from packflow.preprocessors import delimiter_collisions, flatten_record

__all__ = [
    "check_delimiter_collisions",
    "flatten_dict",
    "flatten_records",
    "get_nested_field",
    "get_nested_field_direct",
    "records_to_ndarray",
    "set_nested_field_direct",
]


def check_delimiter_collisions(obj: dict[str, Any], delimiter: str, path: str = "") -> list[str]:
    """The paths (joined by `delimiter`, under `path`) of the keys in `obj`, nested dicts
    included, that contain `delimiter`: `{"a": {"b.c": 1}}` with `"."` gives `["a.b.c"]`."""
    return delimiter_collisions(obj, delimiter, path)


def get_nested_field_direct(obj: dict[str, Any], field: str, delimiter: str = ".") -> Any:
    """`obj[field]` when `field` is a key of `obj`, else the value at the path `field`
    (split on `delimiter`) through nested dicts; None when there is none."""
    if field in obj:
        return obj[field]
    value: Any = obj
    for part in field.split(delimiter):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def set_nested_field_direct(
    obj: dict[str, Any], field: str, value: Any, delimiter: str = "."
) -> None:
    """Store `value` at the path `field` in `obj`, making the nested dicts it needs; nothing
    is stored when the path runs into a value that is not a dict."""
    *parents, leaf = field.split(delimiter)
    current = obj
    for part in parents:
        nxt = current.setdefault(part, {})
        if not isinstance(nxt, dict):
            return
        current = nxt
    current[leaf] = value


def get_nested_field(obj: dict[str, Any], field: str, delimiter: str | None = None) -> Any:
    """The value of `field` in `obj`: a key of that name, else the nested path
    (`get_nested_field({"foo": {"bar": 5}}, "foo.bar") == 5`); None when there is none.
    `delimiter` defaults to `"."`."""
    if field in obj:
        return obj[field]
    sep = delimiter or "."
    found = get_nested_field_direct(obj, field, sep)
    if found is not None:
        return found
    # A path through keys that themselves hold the delimiter: {"a": {"b.c": 1}}, "a.b.c".
    return flatten_record(obj, sep, False).get(field)


def records_to_ndarray(
    records: list[dict[str, Any]],
    feature_names: list[str],
    dtype: Any = None,
    delimiter: str | None = None,
) -> np.ndarray[Any, Any]:
    """A 2-D array, one row per record and one column per name in `feature_names` (nested
    paths allowed); a missing field is None, so such an array has dtype object.

    `[{"a": 1, "b": 2}, {"a": 3, "b": 4}]` with `["a", "b"]` gives `[[1, 2], [3, 4]]`.
    Raises ValueError when `records` is not a list of dicts.
    """
    if not isinstance(records, list):
        raise ValueError(f"records must be a list of dicts, not {type(records).__name__}")  # noqa: TRY004 (as upstream)
    rows = []
    for index, row in enumerate(records):
        if not isinstance(row, dict):
            raise ValueError(f"record {index} is {type(row).__name__}, not a dict")  # noqa: TRY004
        rows.append([get_nested_field(row, name, delimiter) for name in feature_names])
    return np.array(rows, dtype=dtype)


def flatten_dict(
    obj: dict[str, Any], delimiter: str = ".", flatten_lists: bool = False
) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (and `{"a": [1]}` -> `{"a.0": 1}` with
    `flatten_lists`); empty dicts and lists stay values. TypeError for a non-dict."""
    if not isinstance(obj, dict):
        raise TypeError(f"obj must be a dict, not {type(obj).__name__}")
    return flatten_record(obj, delimiter, flatten_lists)


def flatten_records(
    records: list[dict[str, Any]], delimiter: str = ".", flatten_lists: bool = False
) -> list[dict[str, Any]]:
    """`flatten_dict` of every record. TypeError when `records` is not a list."""
    if not isinstance(records, list):
        raise TypeError(f"records must be a list, not {type(records).__name__}")
    return [flatten_dict(r, delimiter, flatten_lists) for r in records]
