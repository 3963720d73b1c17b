"""packflow.testing: the helpers backend authors use in their own tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from packflow import InferenceBackend, ValidationError
from packflow.testing import assert_fails, assert_outputs, run_records


class Half(InferenceBackend):
    def execute(self, inputs: Any) -> Any:
        return [{"h": np.float64(r["x"]) / 2 if r.get("numpy") else r["x"] / 2} for r in inputs]


def test_run_records_returns_outputs() -> None:
    assert run_records(Half(), [{"x": 2}]) == [{"h": 1.0}]


def test_run_records_lists_every_failing_row() -> None:
    with pytest.raises(AssertionError) as info:
        run_records(Half(), [{"x": 2, "numpy": True}, {"x": 1}, {"x": 4, "numpy": True}])
    lines = str(info.value).splitlines()
    assert lines[0] == "2 of 3 rows failed validation:"
    assert lines[1].startswith("  row 0 failed rule 'json_serializable'")
    assert lines[2].startswith("  row 2 failed rule 'json_serializable'")


def test_assert_outputs_names_the_first_differing_row() -> None:
    assert assert_outputs(Half(), [{"x": 2}, {"x": 4}], [{"h": 1.0}, {"h": 2.0}]) == [
        {"h": 1.0},
        {"h": 2.0},
    ]
    with pytest.raises(AssertionError, match=r"row 1: got \{'h': 2.0\}, expected \{'h': 3.0\}"):
        assert_outputs(Half(), [{"x": 2}, {"x": 4}], [{"h": 1.0}, {"h": 3.0}])
    with pytest.raises(AssertionError, match="1 outputs, expected 2"):
        assert_outputs(Half(), [{"x": 2}], [{"h": 1.0}, {"h": 1.0}])


def test_assert_fails_returns_the_matching_error() -> None:
    error = assert_fails(Half(), [{"x": 1}, {"x": 2, "numpy": True}], "json_serializable", row=1)
    assert isinstance(error, ValidationError)
    assert error.row == 1
    batch = assert_fails(Half(), [1], "input_type")  # type: ignore[list-item]
    assert batch.row == 0


def test_assert_fails_when_nothing_fails() -> None:
    with pytest.raises(AssertionError) as info:
        assert_fails(Half(), [{"x": 1}], "json_serializable")
    assert str(info.value) == (
        "expected rule 'json_serializable' to fail; failures:\n  none: every row passed"
    )
    with pytest.raises(AssertionError, match="to fail at row 0; failures:\n  row 1 failed"):
        assert_fails(Half(), [{"x": 1}, {"x": 1, "numpy": True}], "json_serializable", row=0)
