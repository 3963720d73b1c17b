"""Helpers for testing backends with pytest (or any runner that reports `AssertionError`).

    from packflow.testing import assert_outputs, assert_fails

    def test_scores():
        assert_outputs(MyBackend(), [{"x": 1.0}], [{"score": 0.73}])

    def test_numpy_output_is_refused():
        assert_fails(LeakyBackend(), [{"x": 1.0}], "json_serializable", row=0)

They run the backend as the runtime does (`run_batch`: pipeline plus per-row validation).
"""

from __future__ import annotations

from typing import Any

from packflow.backend import InferenceBackend
from packflow.errors import ValidationError


def run_records(backend: InferenceBackend, records: list[dict[str, Any]]) -> list[Any]:
    """Run `backend` on `records` and return the outputs; fail listing every invalid row."""
    result = backend.run_batch(records)
    if result.failures:
        raise AssertionError(
            f"{len(result.failures)} of {len(records)} rows failed validation:\n"
            + "\n".join(f"  {failure}" for failure in result.failures)
        )
    return result.outputs


def assert_outputs(
    backend: InferenceBackend, records: list[dict[str, Any]], expected: list[Any]
) -> list[Any]:
    """Run `backend` on `records` and assert the outputs equal `expected`, row by row.

    The failure names the first differing row with both values. Returns the outputs.
    """
    outputs = run_records(backend, records)
    if len(outputs) != len(expected):
        raise AssertionError(f"{len(outputs)} outputs, expected {len(expected)}")
    for row, (got, want) in enumerate(zip(outputs, expected, strict=True)):
        if got != want:
            raise AssertionError(f"row {row}: got {got!r}, expected {want!r}")
    return outputs


def assert_fails(
    backend: InferenceBackend,
    records: list[dict[str, Any]],
    rule: str,
    *,
    row: int | None = None,
) -> ValidationError:
    """Assert that running `backend` on `records` breaks validation `rule`, at `row` when
    given (else at any row, or for the whole batch). Returns the `ValidationError`."""
    try:
        failures = backend.run_batch(records).failures
    except ValidationError as exc:
        failures = [exc]
    for failure in failures:
        if failure.rule == rule and (row is None or failure.row == row):
            return failure
    seen = "\n".join(f"  {f}" for f in failures) or "  none: every row passed"
    where = "" if row is None else f" at row {row}"
    raise AssertionError(f"expected rule {rule!r} to fail{where}; failures:\n{seen}")
