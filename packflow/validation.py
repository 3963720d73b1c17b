"""Validation rules for a pipeline's inputs and outputs, batch-level and per row.

The runtime validates every batch before publishing it, so the common case is cheap: one
type check per row and one `orjson.dumps` of the whole batch. Only when that fails are the
rows examined one by one to say which rows failed, under which rule, and why.

Rules (`Rule`):

- `input_type`: the input is a dict or a list of dicts.
- `output_type`: the pipeline returns a list (one dict per input row).
- `row_count`: exactly one output per input row.
- `row_type`: every output row is a dict.
- `json_serializable`: every output row encodes as JSON with orjson's default options,
  which is how results are published. numpy scalars and arrays, bytes, sets, non-string
  keys and integers beyond 64 bits fail; convert numpy values with `.item()` or `.tolist()`.
- `finite_number`: no number in an output row is NaN or infinite. JSON (RFC 8259) has no
  such numbers, and orjson would publish them as `null`, silently. The check is nearly
  free: only a batch whose encoding holds `null` is searched for them.

A batch returned as `ArrayRows` (numeric columns, one row per record) is checked per batch
instead: its arrays are JSON numbers by construction, and finiteness is one numpy call per
column. Rows changed after construction are checked like any others.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Mapping
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from packflow.errors import ValidationError


class Rule(enum.StrEnum):
    """The names of the validation rules, as `ValidationError.rule` carries them."""

    INPUT_TYPE = "input_type"
    OUTPUT_TYPE = "output_type"
    ROW_COUNT = "row_count"
    ROW_TYPE = "row_type"
    JSON_SERIALIZABLE = "json_serializable"
    FINITE_NUMBER = "finite_number"


def check_inputs(inputs: Any) -> list[dict[str, Any]]:
    """The input as a list of records: a dict becomes a one-row batch.

    Raises `ValidationError` (`input_type`) naming the first row that is not a dict, or the
    input itself when it is neither a dict nor a list.
    """
    if isinstance(inputs, dict):
        return [inputs]
    if not isinstance(inputs, list):
        raise ValidationError(
            f"input is {type(inputs).__name__}; give a dict or a list of dicts",
            rule=Rule.INPUT_TYPE,
            value=inputs,
        )
    if not all(map(isinstance, inputs, repeat(dict))):
        row = next(i for i, r in enumerate(inputs) if not isinstance(r, dict))
        raise ValidationError(
            f"input row is {type(inputs[row]).__name__}, not a dict",
            rule=Rule.INPUT_TYPE,
            row=row,
            value=inputs[row],
        )
    return inputs


def check_batch(n_inputs: int, outputs: Any) -> list[Any]:
    """Batch-level rules: `outputs` is a list with one entry per input row.

    Returns `outputs`; raises `ValidationError` (`output_type` or `row_count`) otherwise.
    A batch that fails here has no row to blame: the runtime retries its rows one by one.
    """
    if not isinstance(outputs, list):
        raise ValidationError(
            f"the pipeline returned {type(outputs).__name__}; it must return a list with one "
            "dict per input row",
            rule=Rule.OUTPUT_TYPE,
            value=outputs,
        )
    if len(outputs) != n_inputs:
        raise ValidationError(
            f"{n_inputs} input rows gave {len(outputs)} outputs; a backend returns exactly one "
            "output per input row",
            rule=Rule.ROW_COUNT,
            value=len(outputs),
        )
    return outputs


def row_failures(outputs: list[Any]) -> list[ValidationError]:
    """Per-row rules (`row_type`, `json_serializable`, `finite_number`): one error per failing
    row, in row order; an empty list when every row passes."""
    if isinstance(outputs, ArrayRows):
        return outputs.failures()
    if all(map(isinstance, outputs, repeat(dict))):
        try:
            encoded = orjson.dumps(outputs)
        except (TypeError, orjson.JSONEncodeError):
            pass
        else:
            # orjson writes NaN and infinities as null: only then can a row hold one.
            if b"null" not in encoded:
                return []
    failures = []
    for row, output in enumerate(outputs):
        failure = row_failure(row, output)
        if failure is not None:
            failures.append(failure)
    return failures


def row_failure(row: int, output: Any) -> ValidationError | None:
    """The first rule `output` (row `row` of a batch) breaks, or None."""
    if not isinstance(output, dict):
        return ValidationError(
            f"output row is {type(output).__name__}, not a dict",
            rule=Rule.ROW_TYPE,
            row=row,
            value=output,
        )
    try:
        encoded = orjson.dumps(output)
    except (TypeError, orjson.JSONEncodeError) as exc:
        path, value, reason = _unserializable(output, "") or ("the row", output, str(exc))
        hint = "; convert numpy values with .item() or .tolist()" if _is_numpy(value) else ""
        return ValidationError(
            f"{path}: {reason}{hint}", rule=Rule.JSON_SERIALIZABLE, row=row, value=value
        )
    if b"null" in encoded:
        found = _non_finite(output, "")
        if found is not None:
            return _not_finite(row, *found)
    return None


def _not_finite(row: int, path: str, number: float) -> ValidationError:
    return ValidationError(
        f"{path}: {number!r} is not a JSON number (RFC 8259 has no NaN or infinity); "
        "publish null or a string for it explicitly",
        rule=Rule.FINITE_NUMBER,
        row=row,
        value=number,
    )


def _non_finite(value: Any, path: str) -> tuple[str, float] | None:
    """The path and value of the first NaN or infinite float in `value`, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "the row", value)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


class ArrayRows(list[dict[str, Any]]):
    """Outputs held as numeric columns, one row per record: `ArrayRows({"embedding": v})`,
    `v` of shape (rows, ...), is the list `[{"embedding": v[0]}, {"embedding": v[1]}, ...]`.

    For a backend with many numbers per row: no Python float is made of each. The runtime
    checks the batch at once (one finiteness check per float column) and publishes each row
    from its array's buffer (orjson's numpy support). Columns are bool, integer or float
    arrays; floats are held as float64, so that a row is published as its `tolist()` would
    be, byte for byte. `backend(...)` and `run_batch` return `tolist()`, plain lists as
    any backend's; `complete`, the runtime's call, the arrays.

    A row changed after construction (a key added, a value replaced) is checked like any
    other row: its numpy values then fail `json_serializable`.
    """

    columns: dict[str, np.ndarray[Any, Any]]

    def __init__(self, columns: Mapping[str, Any]) -> None:
        arrays: dict[str, np.ndarray[Any, Any]] = {}
        for key, column in columns.items():
            if not isinstance(key, str):
                raise TypeError(f"column key {key!r} is {type(key).__name__}, not a str")
            array = np.asarray(column)
            if array.ndim == 0:
                raise ValueError(f"column {key!r} is a scalar, not one entry per row")
            if array.dtype.kind == "f":
                array = np.ascontiguousarray(array, dtype=np.float64)
            elif array.dtype.kind in "biu":
                array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
            else:
                raise TypeError(f"column {key!r} is {array.dtype}, not bool, integer or float")
            arrays[key] = array
        if len({len(a) for a in arrays.values()}) > 1:
            sizes = {k: len(a) for k, a in arrays.items()}
            raise ValueError(f"columns of different lengths: {sizes}")
        self.columns = arrays
        self._keys = keys = tuple(arrays)
        # Each column's values as built: a row still holding exactly these is checked per
        # batch.
        self._built = [list(a) for a in arrays.values()]
        self._size = len(self._built[0]) if self._built else 0
        if len(keys) == 1:  # the common case, at a third of the cost
            key = keys[0]
            super().__init__({key: value} for value in self._built[0])
        else:
            super().__init__(dict(zip(keys, values, strict=True)) for values in zip(*self._built))

    def _intact(self) -> list[bool]:
        """Per row, whether it still holds exactly the values it was built with."""
        if len(self) != self._size:
            return [False] * len(self)
        keys, is_ = self._keys, operator.is_
        if len(keys) == 1:
            key = keys[0]
            return [
                type(row) is dict and len(row) == 1 and row.get(key, row) is value
                for row, value in zip(self, self._built[0], strict=True)
            ]
        return [
            type(row) is dict and tuple(row) == keys and all(map(is_, row.values(), values))
            for row, values in zip(self, zip(*self._built), strict=True)
        ]

    def failures(self) -> list[ValidationError]:
        """`row_failures` of this batch: finiteness per float column, rows changed since
        construction one by one."""
        intact = self._intact()
        suspects = {i for i, ok in enumerate(intact) if not ok}
        floats = {k: a for k, a in self.columns.items() if a.dtype.kind == "f"}
        finite = {k: np.isfinite(a).all(axis=tuple(range(1, a.ndim))) for k, a in floats.items()}
        for rows_finite in finite.values():
            suspects.update(np.flatnonzero(~rows_finite).tolist())
        failures = []
        for i in sorted(suspects):
            if not intact[i]:
                failure = row_failure(i, self[i])
                if failure is not None:
                    failures.append(failure)
                continue
            key = next(k for k, rows_finite in finite.items() if not rows_finite[i])
            value = floats[key][i]
            at = tuple(np.argwhere(~np.isfinite(value))[0]) if value.ndim else ()
            path = key + "".join(f"[{int(j)}]" for j in at)
            failures.append(_not_finite(i, path, float(value[at])))
        return failures

    def tolist(self) -> list[Any]:
        """The rows as plain Python values (lists, floats, ints, bools), as `tolist()` of
        each array gives them; rows changed since construction as they are."""
        intact = self._intact()
        if not any(intact):
            return list(self)
        natives = [a.tolist() for a in self.columns.values()]
        plain = [
            dict(zip(self._keys, values, strict=True)) for values in zip(*natives, strict=True)
        ]
        return [new if ok else row for new, row, ok in zip(plain, self, intact, strict=True)]


def missing_output_keys(outputs: list[Any], keys: list[str]) -> dict[str, list[int]]:
    """For each of `keys` that some output rows lack, the indexes of those rows."""
    missing = {}
    for key in keys:
        rows = [i for i, row in enumerate(outputs) if not isinstance(row, dict) or key not in row]
        if rows:
            missing[key] = rows
    return missing


def _unserializable(value: Any, path: str) -> tuple[str, Any, str] | None:
    """The path, value and reason of the first part of `value` orjson cannot encode."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where = f"{path}[{key!r}]" if path else f"key {key!r}"
                return where, key, f"{_type_name(key)} key; JSON object keys are strings"
            found = _unserializable(item, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unserializable(item, f"{path}[{i}]")
            if found:
                return found
        return None
    try:
        orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        reason = f"{_type_name(value)} is not JSON-serializable"
        detail = str(exc)
        if not detail.startswith("Type is not JSON serializable"):
            reason += f" ({detail})"
        return path or "the row", value, reason
    return None


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy"
