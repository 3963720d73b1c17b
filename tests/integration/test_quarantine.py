"""Crash-loop quarantine and the execution timeout, against the real broker: a record that
kills its replica process (or runs past `execute_timeout_s`) is dead-lettered after
`max_crash_attempts`, counted in Kafka across processes; every other record is answered."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from packflow.runtime.codecs import make_encoder
from packflow.runtime.headers import read_packflow_headers
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import Pipeline, Run, demo_records, make_pipeline, results_by_key

FAULTY = str(Path(__file__).parent / "faulty_backends.py")
GOOD = 3000
# The members a dead replica leaves behind are evicted after the session timeout: keep it short.
FAST_EVICTION = [
    "--consumer-kafka",
    "session.timeout.ms=6000",
    "--consumer-kafka",
    "heartbeat.interval.ms=1000",
]
# Worst case for one poison record: max_crash_attempts + 2 = 5 deaths, each costing the
# session timeout (6 s), the supervisor's backoff (0.5 s doubling: 15.5 s in all), a restart
# (~3 s) and a rebalance (~3 s): under 80 s; the bound asserted leaves room for a busy CI.
BOUND_S = 150


def _produce(pipeline: Pipeline, bad_id: str, bad_at: int) -> tuple[list[str], bytes]:
    """3,000 good records with one bad one at position `bad_at`; the good ids, its bytes."""
    encoder = make_encoder("schemaless", "demo_input")
    good = demo_records(GOOD)
    bad = demo_records(1, seed=9)[0] | {"id": bad_id}
    items = [(r["id"].encode(), encoder.encode(r)) for r in good]
    items.insert(bad_at, (bad_id.encode(), encoder.encode(bad)))
    produce(pipeline.bootstrap, pipeline.input, items)
    return [r["id"] for r in good], items[bad_at][1]


def _answers(pipeline: Pipeline, guarantee: str, timeout: float) -> tuple[list, list]:
    results = collect(pipeline.bootstrap, pipeline.results, distinct_keys(GOOD), timeout)
    dead = collect(pipeline.bootstrap, pipeline.dead_letters, distinct_keys(1), 60, settle=1)
    return results, dead


def _check(
    results: list, dead: list, good: list[str], bad_id: str, bad: bytes, guarantee: str, stage: str
) -> dict[str, str]:
    assert sorted(results_by_key(results)) == sorted(good)  # every good record answered
    if guarantee == "exactly-once":
        assert len(results) == GOOD  # read_committed: each exactly once
    assert [m.key() for m in dead] == [bad_id.encode()]  # the bad one, once, and nothing else
    assert dead[0].value() == bad
    headers = read_packflow_headers(dead[0].headers())
    assert headers["stage"] == stage, headers
    assert headers["crash.attempts"] == "3"
    return headers


def _exits(run: Run) -> Counter[int]:
    return Counter(e["exitcode"] for e in run.events("replica_exited"))


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_record_that_kills_its_replica_is_dead_lettered_and_the_rest_answered(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    good, bad = _produce(pipeline, "crash-0", GOOD // 2)
    started = time.monotonic()
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Deadly",
        "--replicas",
        "2",
        "--guarantee",
        guarantee,
        "--max-batch-size",
        "64",
        *FAST_EVICTION,
    )
    try:
        results, dead = _answers(pipeline, guarantee, BOUND_S)
        took = time.monotonic() - started
    finally:
        run.terminate()
    headers = _check(results, dead, good, "crash-0", bad, guarantee, "crash")
    deaths = _exits(run)
    assert set(deaths) == {7} and 3 <= deaths[7] <= 5, deaths  # max_crash_attempts + 2 at most
    assert took < BOUND_S
    assert [e["reason"] for e in run.events("record_quarantined")] == ["crash"]
    print(f"crash, {guarantee}: {deaths[7]} deaths, {took:.0f}s, exits {headers['crash.exits']}")


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_the_attempt_count_carries_over_to_another_packflow_run(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    """The first `packflow run` dies once on the record (in the marked first batch of its
    partition) and is stopped; a second one, another process elsewhere, finishes the count."""
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    good, bad = _produce(pipeline, "crash-0", 0)
    args = ["--backend", f"{FAULTY}:Deadly", "--replicas", "2", "--guarantee", guarantee]
    first = Run(pipeline, tmp_path / "first.log", *args, *FAST_EVICTION)
    try:
        first.until(lambda: _exits(first)[7] >= 1, lambda: "no crash", 60)
    finally:
        first.terminate()
    crashed_first = _exits(first)[7]
    assert first.events("record_quarantined") == []
    second = Run(pipeline, tmp_path / "second.log", *args, *FAST_EVICTION)
    try:
        results, dead = _answers(pipeline, guarantee, BOUND_S)
    finally:
        second.terminate()
    _check(results, dead, good, "crash-0", bad, guarantee, "crash")
    suspected = [e for e in second.events("crash_suspected") if e["offset"] == 0]
    # The second run starts from the first one's count, and ends after the rest of it.
    assert suspected and suspected[0]["attempts"] == crashed_first, suspected
    assert crashed_first + _exits(second)[7] == 3, (crashed_first, _exits(second))


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_record_that_hangs_is_dead_lettered_with_stage_timeout(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    good, bad = _produce(pipeline, "hang-0", GOOD // 2)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Deadly",
        "--replicas",
        "2",
        "--guarantee",
        guarantee,
        "--max-batch-size",
        "64",
        "--execute-timeout-s",
        "5",
        "--metrics-port",
        "0",
        *FAST_EVICTION,
    )
    try:
        results, dead = _answers(pipeline, guarantee, BOUND_S + 5 * 5)
    finally:
        run.terminate()
    _check(results, dead, good, "hang-0", bad, guarantee, "timeout")
    assert set(_exits(run)) == {124}
    assert run.events("execute_timeout")
