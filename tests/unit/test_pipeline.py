"""The data path of one batch, without Kafka: every message ends as a result, a dead letter
or a repeat, and one bad record never fails its neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from packflow import InferenceBackend
from packflow.runtime.codecs import make_decoder, make_encoder, make_result_encoder
from packflow.runtime.dedup import AnsweredKeys
from packflow.runtime.pipeline import Pipeline
from packflow.runtime.retries import RetryPolicy
from packflow.validation import ArrayRows


@dataclass
class FakeMessage:
    _value: bytes | None
    _offset: int

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> None:
        return None


class Picky(InferenceBackend):
    """Raises for any batch holding x0 == 13; answers a set (invalid JSON) for x0 == 7."""

    name = "picky"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls = getattr(self, "calls", 0) + 1
        if any(r["x0"] == 13 for r in inputs):
            raise ZeroDivisionError("13 is unlucky")
        return [{"bad": {1}} if r["x0"] == 7 else {"double": r["x0"] * 2} for r in inputs]


def record(i: int, x0: float) -> dict[str, Any]:
    return {"id": f"r{i}", "timestamp": 0, **{f"x{j}": 0.0 for j in range(16)}, "x0": x0}


def test_each_message_becomes_a_result_a_dead_letter_or_a_repeat() -> None:
    encode = make_encoder("schemaless", "demo_input").encode
    values = [encode(record(i, float(i))) for i in range(5)]
    values += [encode(record(5, 13.0)), encode(record(6, 7.0)), b"\x01", None, values[1]]
    batch = [FakeMessage(v, offset) for offset, v in enumerate(values)]
    backend = Picky()
    pipeline = Pipeline(
        backend,
        make_decoder("schemaless", "demo_input"),
        make_result_encoder("json"),
        AnsweredKeys(100, 60),
        "id",
        RetryPolicy(attempts=0),  # retries: test_retries.py
    )

    outcome = pipeline(batch)

    assert [(m.offset(), key) for m, key, _ in outcome.results] == [
        (0, "r0"),
        (1, "r1"),
        (2, "r2"),
        (3, "r3"),
        (4, "r4"),
    ]
    assert orjson.loads(outcome.results[2][2]) == {
        "backend": "picky",
        "backend_version": "0",
        "key": "r2",
        "output": {"double": 4.0},
    }
    stages = {m.offset(): (f.stage, f.error_type) for m, f in outcome.dead}
    assert stages == {
        5: ("backend", "ZeroDivisionError"),
        6: ("validate", "ValidationError"),
        7: ("decode", "DecodeError"),
        8: ("decode", "DecodeError"),
    }
    assert [m.offset() for m in outcome.repeats] == [9]  # r1 again, in the same batch
    # The batch failed once as a whole, then each of its 7 new records ran alone.
    assert backend.calls == 1 + 7

    # Dead-lettered keys are released: a later copy of r5 is tried again, r0 is a repeat.
    again = pipeline([FakeMessage(values[5], 10), FakeMessage(values[0], 11)])
    assert [m.offset() for m, _ in again.dead] == [10]
    assert [m.offset() for m in again.repeats] == [11]


class Vectors(InferenceBackend):
    """`v`: the record's 16 features as a vector, NaN for x0 == 13, as ArrayRows or as
    lists of floats (`as_lists`)."""

    name = "vectors"

    def __init__(self, as_lists: bool) -> None:
        self.as_lists = as_lists
        super().__init__()

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        v = np.array([[r[f"x{j}"] for j in range(16)] for r in inputs]) / 3
        v[v[:, 0] == 13 / 3] = np.nan
        rows = ArrayRows({"v": v, "n": np.arange(len(inputs))})
        return rows.tolist() if self.as_lists else rows


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_array_rows_give_the_results_and_dead_letters_of_lists_of_floats(fmt: Any) -> None:
    encode = make_encoder("schemaless", "demo_input").encode
    rows = [record(i, float(i) + 0.5) for i in range(40)] + [record(40, 13.0)]
    for r in rows:
        r.update({f"x{j}": r["x0"] * j - 7 for j in range(1, 16)})
    batch = [FakeMessage(encode(r), offset) for offset, r in enumerate(rows)]
    outcomes = []
    for as_lists in (False, True):
        pipeline = Pipeline(
            Vectors(as_lists),
            make_decoder("schemaless", "demo_input"),
            make_result_encoder(fmt),
            AnsweredKeys(100, 60),
            "id",
            RetryPolicy(attempts=0),
        )
        outcomes.append((pipeline(batch[:40]), pipeline(batch[40:] + batch[:3])))
    (arrays, arrays_nan), (lists, lists_nan) = outcomes
    assert [(m.offset(), k, v) for m, k, v in arrays.results] == [
        (m.offset(), k, v) for m, k, v in lists.results
    ]
    assert len(arrays.results) == 40
    # A NaN is a dead letter at validation, whichever the form.
    assert [(m.offset(), f.stage, f.message) for m, f in arrays_nan.dead] == [
        (m.offset(), f.stage, f.message) for m, f in lists_nan.dead
    ]
    assert [(m.offset(), f.stage) for m, f in arrays_nan.dead] == [(40, "validate")]
