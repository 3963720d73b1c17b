"""The bad day against the real broker: a backend error retried with backoff (commits and
polls going on meanwhile), and an output the producer refuses becoming a dead letter rather
than a restart loop (issue 15)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from packflow.runtime.codecs import make_encoder
from packflow.runtime.headers import TRUNCATED_BYTES, read_packflow_headers
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import Run, demo_records, make_pipeline

FAULTY = str(Path(__file__).with_name("faulty_backends.py"))
GUARANTEES = ["at-least-once", "exactly-once"]


def encoded(records: list[dict]) -> list[tuple[bytes, bytes]]:
    encoder = make_encoder("schemaless", "demo_input")
    return [(r["id"].encode(), encoder.encode(r)) for r in records]


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (-1001 when none), read without joining."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_result_too_large_for_the_producer_is_a_dead_letter_and_nothing_restarts(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    good = demo_records(300)
    huge = demo_records(1, seed=1)
    huge[0]["id"] = "huge-0"
    mixed = good[:150] + huge + good[150:]
    produce(kafka_bootstrap, pipeline.input, encoded(mixed))
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Oversize",
        "--guarantee",
        guarantee,
        "--max-batch-size",
        "32",
    )
    try:
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(300), timeout=90)
        dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(1), timeout=30)
    finally:
        assert run.terminate() == 0
    assert len(results) == 300
    assert sorted(m.key().decode() for m in results) == sorted(r["id"] for r in good)
    (letter,) = dead
    assert letter.key() == b"huge-0"
    assert letter.value() == encoded(huge)[0][1]  # the input, whole: it is small
    h = read_packflow_headers(letter.headers())
    assert (h["stage"], h["error.type"]) == ("publish", "MSG_SIZE_TOO_LARGE")
    assert "truncated" not in h
    assert len(run.events("replica_started")) == 1  # never stopped, never restarted
    assert run.events("replica_stopped")[0]["fatal"] is None


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_result_over_the_results_topics_own_limit_is_a_dead_letter_too(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    """The results topic's max.message.bytes (200 KB) is below the producer's (1 MB): the
    broker would refuse a 500 KB result in a delivery report, after produce() returned. The
    replica reads the topics' limits at start and has librdkafka refuse it in produce()."""
    pipeline = replace(
        make_pipeline(kafka_bootstrap, make_topic, partitions=3),
        results=make_topic(3, **{"cleanup.policy": "compact", "max.message.bytes": "200000"}),
    )
    good = demo_records(3000)
    medium = demo_records(1, seed=1)
    medium[0]["id"] = "medium-0"
    produce(kafka_bootstrap, pipeline.input, encoded(good[:1500] + medium + good[1500:]))
    run = Run(pipeline, tmp_path / "run.log", "--backend", f"{FAULTY}:Oversize",
              "--guarantee", guarantee)  # fmt: skip
    try:
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(3000), timeout=90)
        dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(1), timeout=30)
    finally:
        assert run.terminate() == 0
    assert len(results) == 3000
    assert sorted(m.key().decode() for m in results) == sorted(r["id"] for r in good)
    (letter,) = dead
    h = read_packflow_headers(letter.headers())
    assert (letter.key(), h["stage"], h["error.type"]) == (
        b"medium-0",
        "publish",
        "MSG_SIZE_TOO_LARGE",
    )
    (limited,) = run.events("producer_limited")
    assert limited["message_max_bytes"] == 200000 - 1024
    assert len(run.events("replica_started")) == 1  # never stopped, never restarted
    assert run.events("delivery_failed") == []
    assert run.events("replica_stopped")[0]["fatal"] is None


def test_a_dead_letter_too_large_for_the_producer_carries_a_truncated_copy(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=1)
    big = b"\x00not avro" + bytes(300_000)  # a decode failure, larger than the limit below
    produce(kafka_bootstrap, pipeline.input, [(b"big-0", big), *encoded(demo_records(50))])
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Oversize",
        "--producer-kafka",
        "message.max.bytes=200000",
    )
    try:
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(50), timeout=60)
        dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(1), timeout=30)
    finally:
        assert run.terminate() == 0
    assert len(results) == 50
    (letter,) = dead
    assert letter.value() == big[:TRUNCATED_BYTES]
    h = read_packflow_headers(letter.headers())
    assert h["stage"] == "decode"
    assert h["truncated"] == "true"
    assert h["original.size"] == str(len(big))
    assert h["original.sha256"] == hashlib.sha256(big).hexdigest()
    assert len(run.events("replica_started")) == 1


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_long_backoff_holds_no_commit_and_no_poll_back(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    """One partition: 200 good records, then one whose every call raises, retried 4 times
    with backoffs of 1.5 to 3 s (as a batch, and again alone when its batch held good records
    too): 6 s at least, up to 24 s, around the 7 s max.poll.interval.ms. The batches before
    it are committed during the backoff."""
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=1)
    good = demo_records(200)
    bad = demo_records(1, seed=1)
    bad[0]["id"] = "raise-0"
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Poisoned",
        "--guarantee",
        guarantee,
        "--max-batch-size",
        "20",
        "--retry-attempts",
        "4",
        "--retry-backoff-ms",
        "3000",
        "--retry-backoff-max-ms",
        "3000",
        "--consumer-kafka",
        "session.timeout.ms=6000",
        "--consumer-kafka",
        "heartbeat.interval.ms=1000",
        "--consumer-kafka",
        "max.poll.interval.ms=7000",
    )
    try:
        run.wait_for("partitions_assigned")
        produce(kafka_bootstrap, pipeline.input, encoded(good + bad))
        produced_at = time.monotonic()
        # Committed while the bad record's batch waits (were the gate held, not before its
        # retries end).
        # Its batch (at most 20 records) may hold good records too: 181 at least.
        while committed(kafka_bootstrap, pipeline.group, pipeline.input) < 181:
            assert time.monotonic() - produced_at < 6, "no commit during the backoff"
            time.sleep(0.2)
        assert not run.events("dead_letter")  # still retrying
        dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(1), timeout=40)
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(200), timeout=30)
    finally:
        assert run.terminate() == 0
    assert len(results) == 200
    (letter,) = dead
    h = read_packflow_headers(letter.headers())
    assert (h["stage"], h["error.type"], h["attempts"]) == ("backend", "RuntimeError", "5")
    assert len(run.events("replica_started")) == 1
    assert not run.events("partitions_lost")
    assert len(run.events("partitions_assigned")) == 1  # the group never moved on
    assert run.events("replica_stopped")[0]["retries"] in (4, 8)
