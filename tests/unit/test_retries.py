"""Retry with backoff before a batch is split, and before a record is dead-lettered: the
policy alone (pure), then through the pipeline with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from packflow import InferenceBackend, PermanentError
from packflow.errors import BackendError, PackflowError, PreprocessError, ValidationError
from packflow.runtime.codecs import make_decoder, make_encoder, make_result_encoder
from packflow.runtime.dedup import AnsweredKeys
from packflow.runtime.pipeline import Pipeline
from packflow.runtime.retries import RetryInterrupted, RetryPolicy
from tests.unit.test_pipeline import FakeMessage, record


def wrapped(cause: Exception) -> BackendError:
    """As the SDK raises a stage's exception: chained under a BackendError."""
    try:
        raise BackendError("b.execute() failed", backend="b", stage="execute") from cause
    except BackendError as exc:
        return exc


def test_backoff_doubles_up_to_its_ceiling_and_is_jittered_down_by_at_most_half() -> None:
    top = RetryPolicy(attempts=6, backoff_s=0.1, backoff_max_s=1.0, jitter=lambda: 1.0)
    bottom = RetryPolicy(attempts=6, backoff_s=0.1, backoff_max_s=1.0, jitter=lambda: 0.0)
    assert [round(top.delay(n), 6) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert [round(bottom.delay(n), 6) for n in range(1, 7)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_permanent_errors_are_not_retried() -> None:
    policy = RetryPolicy(permanent=["KeyError", "json.decoder.JSONDecodeError"])
    assert policy.retriable(wrapped(ConnectionError("hiccup")))
    assert not policy.retriable(wrapped(PermanentError("bad input")))
    assert issubclass(PermanentError, PackflowError)
    assert not policy.retriable(wrapped(KeyError("x")))
    import json

    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        assert not policy.retriable(wrapped(exc))  # named by module.Class
    assert not policy.retriable(wrapped(ValidationError("bad", rule="r")))
    assert not policy.retriable(PreprocessError("no field", row=0, field="x"))
    assert RetryPolicy().retriable(wrapped(KeyError("x")))  # only when configured


class Flaky(InferenceBackend):
    """Fails the calls whose number (from 1) is in `fails`; raises PermanentError for
    x0 == 13 whatever the call."""

    name = "flaky"
    fails: frozenset[int] = frozenset()

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls = getattr(self, "calls", 0) + 1
        if any(r["x0"] == 13 for r in inputs):
            raise PermanentError("13 is bad input")
        if self.calls in self.fails:
            raise ConnectionError("model server hiccup")
        return [{"y": r["x0"]} for r in inputs]


def run(fails: set[int], x0s: list[float], attempts: int = 3) -> tuple[Any, Flaky, list[float]]:
    encode = make_encoder("schemaless", "demo_input").encode
    batch = [FakeMessage(encode(record(i, x)), i) for i, x in enumerate(x0s)]
    backend = Flaky()
    backend.fails = frozenset(fails)
    waits: list[float] = []
    pipeline = Pipeline(
        backend,
        make_decoder("schemaless", "demo_input"),
        make_result_encoder("json"),
        AnsweredKeys(100, 60),
        "id",
        RetryPolicy(attempts=attempts, backoff_s=1.0, backoff_max_s=3.0, jitter=lambda: 1.0),
        wait=waits.append,  # a fake clock: the waits are recorded, not slept
    )
    return pipeline(batch), backend, waits


def test_a_batch_that_fails_is_retried_whole_with_backoff_before_it_is_split() -> None:
    outcome, backend, waits = run({1, 2}, [0.0, 1.0, 2.0])
    assert [key for _, key, _ in outcome.results] == ["r0", "r1", "r2"]
    assert not outcome.dead
    assert backend.calls == 3  # two failures, then the whole batch again
    assert waits == [1.0, 2.0]


def test_after_its_retries_a_batch_is_split_and_each_record_retried_likewise() -> None:
    # Calls 1-4: the batch (first call and 3 retries); 5: r0; 6-9: r1 fails 4 times; 10: r2.
    outcome, backend, waits = run({1, 2, 3, 4, 6, 7, 8, 9}, [0.0, 1.0, 2.0])
    assert [key for _, key, _ in outcome.results] == ["r0", "r2"]
    ((message, failure),) = outcome.dead
    assert message.offset() == 1
    assert (failure.stage, failure.error_type, failure.attempts) == (
        "backend",
        "ConnectionError",
        4,
    )
    assert backend.calls == 10
    assert waits == [1.0, 2.0, 3.0] * 2  # the batch's backoff, then r1's (capped at 3 s)


def test_a_permanent_error_skips_the_retries_but_still_spares_the_batch_mates() -> None:
    outcome, backend, waits = run(set(), [0.0, 13.0, 2.0])
    assert [key for _, key, _ in outcome.results] == ["r0", "r2"]
    ((message, failure),) = outcome.dead
    assert (message.offset(), failure.error_type, failure.attempts) == (1, "PermanentError", 1)
    assert backend.calls == 1 + 3  # the batch once, then each record once
    assert waits == []


def test_a_wait_interrupted_by_a_stop_gives_the_batch_up() -> None:
    encode = make_encoder("schemaless", "demo_input").encode
    backend = Flaky()
    backend.fails = frozenset({1})

    def stopping(seconds: float) -> None:
        raise RetryInterrupted

    pipeline = Pipeline(
        backend,
        make_decoder("schemaless", "demo_input"),
        make_result_encoder("json"),
        AnsweredKeys(100, 60),
        "id",
        wait=stopping,
    )
    staged = pipeline.prepare([FakeMessage(encode(record(0, 0.0)), 0)])
    with pytest.raises(RetryInterrupted):
        pipeline.complete(staged)
    pipeline.abandon(staged)  # as the replica does: the key is free for the record's re-read
    again = pipeline([FakeMessage(encode(record(0, 0.0)), 0)])
    assert [key for _, key, _ in again.results] == ["r0"]
