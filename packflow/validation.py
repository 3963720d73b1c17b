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
"""

from __future__ import annotations

import enum
import math
from itertools import repeat
from typing import Any

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
    """Per-row rules (`row_type`, `json_serializable`): one error per failing row, in row
    order; an empty list when every row passes."""
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
            path, number = found
            return ValidationError(
                f"{path}: {number!r} is not a JSON number (RFC 8259 has no NaN or infinity); "
                "publish null or a string for it explicitly",
                rule=Rule.FINITE_NUMBER,
                row=row,
                value=number,
            )
    return None


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
