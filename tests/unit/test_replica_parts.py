"""The replica's parts without a broker: Checkpoint (both guarantees), Assignment,
Backpressure, Publisher and the BatchGate, each over fakes of the Kafka clients."""

from __future__ import annotations

import gc
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from packflow import InferenceBackend
from packflow.runtime.assignment import Assignment, Taken, by_partition, first_and_last
from packflow.runtime.backpressure import Backpressure
from packflow.runtime.batcher import PartitionQueues
from packflow.runtime.checkpoint import (
    AtLeastOnce,
    BatchGate,
    ExactlyOnce,
    FencedError,
    commit_sync,
    open_checkpoint,
    rebalance_callback,
)
from packflow.runtime.codecs import make_decoder, make_encoder, make_result_encoder
from packflow.runtime.dedup import AnsweredKeys
from packflow.runtime.headers import TRUNCATED_BYTES, read_packflow_headers
from packflow.runtime.metrics import ReplicaMetrics
from packflow.runtime.pipeline import Failure, Outcome, Pipeline
from packflow.runtime.publisher import NotAuthorized, Publisher, PublishRejected
from packflow.runtime.quarantine import Mark, Quarantine, parse_mark
from packflow.runtime.registry_wait import RegistryWait
from packflow.runtime.replica import DataPath, RunState, settle_heap
from packflow.runtime.retries import RetryPolicy
from packflow.runtime.settings import RuntimeSettings
from packflow.runtime.tracing import Tracing
from packflow.runtime.transactions import Transaction

A, B = ("in", 0), ("in", 1)


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((level, event, kw))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [kw for _, e, kw in self.events if e == event]


@dataclass
class Msg:
    """A consumed message, as the parts read one."""

    offset_: int
    partition_: int = 0
    key_: bytes | None = b"k"
    value_: bytes | None = b"v"
    headers_: list[tuple[str, bytes]] | None = None
    topic_: str = "in"

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self.headers_


@dataclass
class FakeConsumer:
    commits: list[tuple[list[tuple[str, int, int]], bool]] = field(default_factory=list)
    paused: list[TP] = field(default_factory=list)
    resumed: list[TP] = field(default_factory=list)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    fail_commit: bool = False
    hang_commit: threading.Event | None = None  # a commit blocks until it is set
    not_ours: set[TP] = field(default_factory=set)
    metadata: dict[TP, str | None] = field(default_factory=dict)  # of the last commit

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.hang_commit is not None:
            self.hang_commit.wait(10)
        if self.fail_commit:
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        self.metadata |= {(o.topic, o.partition): o.metadata for o in offsets}
        self.commits.append(
            (sorted((o.topic, o.partition, o.offset) for o in offsets), asynchronous)
        )

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused += [(p.topic, p.partition) for p in partitions]

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed += [(p.topic, p.partition) for p in partitions]

    def seek(self, partition: TopicPartition) -> None:
        if (partition.topic, partition.partition) in self.not_ours:
            raise KafkaException(KafkaError(KafkaError._STATE, "not assigned"))
        self.seeks.append((partition.topic, partition.partition, partition.offset))

    def consumer_group_metadata(self) -> str:
        return "group-metadata"


TP = tuple[str, int]


@dataclass
class FakeProducer:
    unacknowledged: int = 0
    buffer_full: int = 0  # produce() calls that raise BufferError first
    produced: list[tuple[str, bytes | None, bytes | None, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    offsets_sent: list[tuple[list[tuple[str, int, int]], Any]] = field(default_factory=list)
    commit_error: KafkaError | None = None
    max_bytes: int | None = None  # larger values are refused, as message.max.bytes does
    refuse: KafkaError | None = None  # every produce() raises it
    metadata: dict[TP, str | None] = field(default_factory=dict)  # of the offsets last sent

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Any = None) -> None:
        if self.buffer_full:
            self.buffer_full -= 1
            raise BufferError("queue full")
        if self.refuse is not None:
            raise KafkaException(self.refuse)
        if self.max_bytes is not None and len(value or b"") > self.max_bytes:
            raise KafkaException(
                KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Message size too large")
            )
        if isinstance(key, str):  # as confluent-kafka does: a str key is sent as UTF-8
            key = key.encode()
        self.produced.append((topic, key, value, headers))

    def poll(self, timeout: float = 0) -> int:
        self.calls.append("poll")
        return 0

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return self.unacknowledged

    def init_transactions(self, timeout: float) -> None:
        self.calls.append("init_transactions")

    def begin_transaction(self) -> None:
        self.calls.append("begin_transaction")

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        self.metadata |= {(o.topic, o.partition): o.metadata for o in offsets}
        self.offsets_sent.append(
            (sorted((o.topic, o.partition, o.offset) for o in offsets), metadata)
        )

    def commit_transaction(self, timeout: float) -> None:
        if self.commit_error is not None:
            raise KafkaException(self.commit_error)
        self.calls.append("commit_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort_transaction")


# -- Checkpoint: at-least-once ------------------------------------------------------------------


def at_least_once(
    interval_s: float = 3600,
) -> tuple[AtLeastOnce, FakeConsumer, FakeProducer, Log]:
    consumer, producer, log = FakeConsumer(), FakeProducer(), Log()
    return AtLeastOnce(consumer, producer, interval_s, log), consumer, producer, log


def test_at_least_once_flushes_then_commits_the_position_after_each_partitions_last_record() -> (
    None
):
    checkpoint, consumer, producer, _ = at_least_once()
    checkpoint.begin()  # nothing to do before a batch
    checkpoint.done([(A, 0, 9), (B, 5, 6)], ["k"] * 12)
    checkpoint.done([(A, 10, 19)], [])
    assert checkpoint.commit(periodic=True) is None
    assert producer.calls == ["flush"]
    assert consumer.commits == [([("in", 0, 20), ("in", 1, 7)], True)]  # periodic: async
    # Nothing moved since: no flush, no commit.
    checkpoint.commit()
    assert producer.calls == ["flush"] and len(consumer.commits) == 1
    checkpoint.done([(B, 7, 7)], [])
    checkpoint.commit(only={A, B})  # before partitions go: synchronous
    assert consumer.commits[-1] == ([("in", 1, 8)], False)


def test_at_least_once_commits_only_the_partitions_asked_for() -> None:
    checkpoint, consumer, _, _ = at_least_once()
    checkpoint.done([(A, 0, 4), (B, 0, 2)], [])
    checkpoint.commit(only={B})
    assert consumer.commits == [([("in", 1, 3)], False)]
    checkpoint.forget([B])
    checkpoint.commit()
    assert consumer.commits[-1] == ([("in", 0, 5)], False)


def test_at_least_once_defers_while_outputs_are_unacknowledged_or_after_a_failed_delivery() -> None:
    checkpoint, consumer, producer, log = at_least_once()
    checkpoint.done([(A, 0, 4)], [])
    producer.unacknowledged = 3
    checkpoint.commit()
    assert consumer.commits == [] and log.named("commit_deferred") == [{"unacknowledged": 3}]
    producer.unacknowledged = 0
    checkpoint.commit()
    assert consumer.commits == [([("in", 0, 5)], False)]
    # A delivery that failed for good: the replica must stop, nothing more is committed.
    assert checkpoint.delivery_failed() is True
    checkpoint.done([(A, 5, 9)], [])
    checkpoint.commit()
    assert len(consumer.commits) == 1


def test_at_least_once_retries_positions_whose_commit_failed() -> None:
    checkpoint, consumer, _, log = at_least_once()
    checkpoint.done([(A, 0, 4)], [])
    consumer.fail_commit = True
    checkpoint.commit()
    assert log.named("commit_failed")
    consumer.fail_commit = False
    checkpoint.commit()
    assert consumer.commits == [([("in", 0, 5)], False)]
    # An asynchronous commit that failed later (the consumer's callback) is retried too.
    checkpoint.on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [TopicPartition("in", 0)])
    checkpoint.commit()
    assert consumer.commits[-1] == ([("in", 0, 5)], False)
    checkpoint.on_commit(None, [TopicPartition("in", 0)])  # success: nothing to redo
    checkpoint.commit()
    assert len(consumer.commits) == 2


def test_a_synchronous_commit_that_is_never_answered_fails_within_its_wait() -> None:
    consumer = FakeConsumer(hang_commit=threading.Event())
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        commit_sync(consumer, [TopicPartition("in", 0, 5)], wait_s=0.2)
    assert raised.value.args[0].code() == KafkaError._TIMED_OUT
    assert time.monotonic() - started < 1.0
    consumer.hang_commit.set()  # type: ignore[union-attr]


def test_inside_a_rebalance_callback_a_synchronous_commit_is_made_on_the_callbacks_thread() -> None:
    threads: list[int] = []

    class Recording(FakeConsumer):
        def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
            threads.append(threading.get_ident())
            super().commit(offsets, asynchronous)

    consumer = Recording()
    commit_sync(consumer, [TopicPartition("in", 0, 5)])
    with rebalance_callback():
        commit_sync(consumer, [TopicPartition("in", 0, 6)])
    assert threads[0] != threading.get_ident()  # bounded: on a thread of its own
    assert threads[1] == threading.get_ident()
    assert [c[0] for c in consumer.commits] == [[("in", 0, 5)], [("in", 0, 6)]]


def test_a_mark_whose_commit_is_never_answered_is_a_failed_mark_not_a_stuck_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkpoint, consumer, _, log = at_least_once()
    consumer.hang_commit = threading.Event()
    monkeypatch.setattr(commit_sync, "__defaults__", (0.2, None))
    checkpoint.mark({A: (3, "{}")})
    assert log.named("mark_failed")
    assert checkpoint.position(A) is None  # not counted as committed
    consumer.hang_commit.set()


def test_at_least_once_is_due_every_interval_and_abandons_nothing() -> None:
    assert at_least_once(interval_s=0)[0].due(idle=False)
    checkpoint = at_least_once(interval_s=3600)[0]
    assert not checkpoint.due(idle=True)  # idle input does not make it due
    assert checkpoint.abandon() is None


# -- Checkpoint: exactly-once -------------------------------------------------------------------


def exactly_once() -> tuple[ExactlyOnce, FakeProducer]:
    consumer, producer = FakeConsumer(), FakeProducer()
    return ExactlyOnce(Transaction(producer, consumer, 3600), 5.0), producer  # type: ignore[arg-type]


def test_exactly_once_commits_outputs_and_offsets_in_one_transaction() -> None:
    checkpoint, producer = exactly_once()
    assert not checkpoint.due(idle=True)  # nothing open
    checkpoint.begin()
    checkpoint.begin()  # one transaction for several batches
    checkpoint.done([(A, 0, 9)], ["a", "b"])
    checkpoint.done([(A, 10, 11), (B, 3, 4)], ["c"])
    assert not checkpoint.due(idle=False)
    assert checkpoint.due(idle=True)  # an idle input commits at once
    assert checkpoint.commit(only={B}) is None  # the transaction commits whole
    assert producer.calls == ["begin_transaction", "commit_transaction"]
    assert producer.offsets_sent == [([("in", 0, 12), ("in", 1, 5)], "group-metadata")]
    assert checkpoint.abandon() is None  # nothing open any more
    assert checkpoint.delivery_failed() is False  # the commit fails on it and aborts


def test_exactly_once_abort_says_where_to_reread_and_which_answers_to_forget() -> None:
    checkpoint, producer = exactly_once()
    checkpoint.begin()
    checkpoint.done([(A, 4, 9), (B, 0, 0)], ["a", "b"])
    producer.commit_error = KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True)
    aborted = checkpoint.commit()
    assert aborted is not None
    assert aborted.rewind == {A: 4, B: 0}
    assert aborted.keys == ["a", "b"]
    assert producer.calls[-1] == "abort_transaction"
    # Lost partitions: the open transaction is aborted the same way.
    producer.commit_error = None
    checkpoint.begin()
    checkpoint.done([(B, 1, 2)], ["c"])
    abandoned = checkpoint.abandon()
    assert abandoned is not None and abandoned.rewind == {B: 1} and abandoned.keys == ["c"]


def test_exactly_once_fenced_producer_raises() -> None:
    checkpoint, producer = exactly_once()
    checkpoint.begin()
    checkpoint.done([(A, 0, 0)], ["a"])
    producer.commit_error = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(FencedError, match="cannot commit"):
        checkpoint.commit()


def test_open_checkpoint_follows_the_guarantee() -> None:
    producer = FakeProducer()
    eos = RuntimeSettings(guarantee="exactly-once", backend="x:Y")
    assert isinstance(open_checkpoint(eos, FakeConsumer(), producer, Log()), ExactlyOnce)
    assert producer.calls == ["init_transactions"]  # fences an earlier instance
    alo = open_checkpoint(RuntimeSettings(backend="x:Y"), FakeConsumer(), FakeProducer(), Log())
    assert isinstance(alo, AtLeastOnce)


# -- Assignment ---------------------------------------------------------------------------------


def assignment() -> Assignment[Msg]:
    return Assignment(PartitionQueues(100))


def test_a_batch_runs_only_on_partitions_held_under_the_generation_it_was_taken_with() -> None:
    held = assignment()
    assert held.assign([A, B]) == [0, 1]
    assert held.accept({A: [Msg(0), Msg(1)], B: [Msg(0, 1)]}) == 3
    taken = held.take(10, 0)
    assert sorted(tp for tp, _ in taken.runs) == [A, B]
    held.release([B])
    assert [tp for tp, _ in held.owned(taken)] == [A]
    # Revoked and assigned again in between: a new generation, so the old batch is void.
    held.assign([A])
    assert held.owned(taken) == []
    assert len(held) == 1 and held.held() == [A]


def test_a_rewind_voids_taken_batches_drops_queued_records_and_seeks() -> None:
    held, consumer, log = assignment(), FakeConsumer(), Log()
    held.assign([A, B])
    held.accept({A: [Msg(0)], B: [Msg(0, 1)]})
    taken = held.take(1, 0)  # one record taken, the other still queued
    held.rewind({A: 0, B: 0})
    assert held.owned(taken) == []
    assert len(held.queues) == 0
    # Fetched before the seek: not queued; they will be read again.
    assert held.accept({A: [Msg(1)]}) == 0
    consumer.not_ours = {B}
    held.seek_rewound(consumer, log)
    assert consumer.seeks == [("in", 0, 0)]
    assert [e["partition"] for e in log.named("seek_skipped")] == [1]
    assert held.accept({A: [Msg(0)]}) == 1  # read again from the rewind point


def test_first_and_last_offsets_of_each_run() -> None:
    assert first_and_last([(A, [Msg(3), Msg(4), Msg(7)]), (B, [Msg(0, 1)])]) == [
        (A, 3, 7),
        (B, 0, 0),
    ]


def test_a_fetch_is_sorted_by_partition_in_offset_order_and_its_errors_set_apart() -> None:
    @dataclass
    class Fetched:  # confluent-kafka before 2.13 cannot make a Message in Python
        _topic: str
        _partition: int
        _offset: int = -1
        _error: KafkaError | None = None

        def topic(self) -> str:
            return self._topic

        def partition(self) -> int:
            return self._partition

        def offset(self) -> int:
            return self._offset

        def error(self) -> KafkaError | None:
            return self._error

    def fetched(topic: str, partition: int, offset: int) -> Any:
        return Fetched(topic, partition, offset)

    def offsets(grouped: dict[Any, list[Any]]) -> dict[Any, list[int | None]]:
        return {tp: [m.offset() for m in run] for tp, run in grouped.items()}

    # Runs of one partition, a partition met again later, and an error among them.
    broken: Any = Fetched("in", 0, _error=KafkaError(KafkaError._TRANSPORT))
    one_topic = [fetched("in", 0, 5), fetched("in", 0, 6), fetched("in", 2, 1), broken]
    one_topic += [fetched("in", 0, 7), fetched("in", 2, 2)]
    grouped, errors = by_partition(one_topic)
    assert offsets(grouped) == {("in", 0): [5, 6, 7], ("in", 2): [1, 2]}
    assert [e.code() for e in errors] == [KafkaError._TRANSPORT]
    # A pattern subscription: the same partition number of two topics stays apart.
    two_topics = [fetched("a", 0, 1), fetched("b", 0, 1), fetched("a", 0, 2)]
    grouped, errors = by_partition(two_topics)
    assert offsets(grouped) == {("a", 0): [1, 2], ("b", 0): [1]}
    assert errors == []
    assert by_partition([broken]) == ({}, [broken.error()])
    assert by_partition([]) == ({}, [])


def test_settle_heap_freezes_what_start_up_made_and_leaves_batches_to_refcounting() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        settle_heap(1000)
        assert gc.get_freeze_count() > 0  # modules and the like: never walked again
        assert gc.get_threshold() == (max(before[0], 10_000), *before[1:])
        gc.set_threshold(*before)
        settle_heap(1)  # batches of one: never below CPython's own threshold
        assert gc.get_threshold() == before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_drop_queued_empties_the_queues_of_every_partition_held() -> None:
    held = assignment()
    held.assign([A])
    held.accept({A: [Msg(0), Msg(1)]})
    held.drop_queued()
    assert len(held.queues) == 0


# -- Backpressure -------------------------------------------------------------------------------


def test_a_full_queue_holds_fetching_then_pauses_its_partition_and_resumes_when_drained() -> None:
    consumer, sizes, now = FakeConsumer(), {A: 0, B: 0}, [100.0]
    flow = Backpressure(consumer, sizes.__getitem__, limit=10, hold_s=1.0, clock=lambda: now[0])
    assert flow.fetch_now([A, B])
    sizes[A] = 10
    assert not flow.fetch_now([A, B])  # held a moment: the worker may drain it
    assert consumer.paused == []
    now[0] += 0.5
    sizes[A] = 9
    assert flow.fetch_now([A, B])  # drained below the limit in time: no pause
    sizes[A] = 10
    assert not flow.fetch_now([A, B])
    now[0] += 1.5
    assert flow.fetch_now([A, B])  # still full after the hold: paused, fetching goes on
    assert consumer.paused == [A] and flow.paused == {A}
    sizes[A] = 6
    flow.fetch_now([A, B])
    assert consumer.resumed == []  # not yet half drained
    sizes[A] = 5
    flow.fetch_now([A, B])
    assert consumer.resumed == [A] and flow.paused == set()


def test_released_partitions_are_forgotten() -> None:
    consumer, now = FakeConsumer(), [0.0]
    flow = Backpressure(consumer, lambda tp: 10, limit=10, hold_s=1.0, clock=lambda: now[0])
    flow.fetch_now([A])
    now[0] = 2.0
    flow.fetch_now([A])
    assert flow.paused == {A}
    flow.forget([A])
    assert flow.paused == set()
    now[0] = 2.5
    assert not flow.fetch_now([A])  # a new hold, not an old one's leftover


# -- Publisher ----------------------------------------------------------------------------------


def publisher(
    producer: FakeProducer, result_headers: bool = False, fatal_on_failure: bool = True
) -> tuple[Publisher, list[str], Log]:
    failures: list[str] = []
    log = Log()
    return (
        Publisher(
            producer,  # type: ignore[arg-type]
            results_topic="results",
            dead_letter_topic="dlq",
            backend="model",
            backend_version="3",
            result_headers=result_headers,
            tracing=Tracing("model"),
            on_failure=lambda: fatal_on_failure,
            fail=failures.append,
            log=log,
        ),
        failures,
        log,
    )


def test_results_go_under_their_keys_with_the_inputs_trace_context() -> None:
    producer = FakeProducer(buffer_full=3)
    publish, _, _ = publisher(producer)
    traced = Msg(1, headers_=[("traceparent", b"00-abc-def-01"), ("other", b"x")])
    outcome: Outcome[Any] = Outcome(results=[(Msg(0), "id-0", b"r0"), (traced, "id-1", b"r1")])
    publish.publish(outcome)
    assert producer.produced == [
        ("results", b"id-0", b"r0", None),
        ("results", b"id-1", b"r1", [("traceparent", b"00-abc-def-01")]),
    ]
    assert producer.calls.count("poll") == 2  # a full queue: tried, drained, tried again


def test_result_headers_name_the_backend_and_the_source() -> None:
    producer = FakeProducer()
    publish, _, _ = publisher(producer, result_headers=True)
    publish.publish(Outcome(results=[(Msg(7, partition_=2), "id", b"r")]))
    (_, _, _, headers) = producer.produced[0]
    assert read_packflow_headers(headers) == {
        "backend": "model",
        "backend.version": "3",
        "source.topic": "in",
        "source.partition": "2",
        "source.offset": "7",
    }


def test_dead_letters_keep_the_original_key_and_bytes_and_say_why() -> None:
    producer = FakeProducer()
    publish, _, log = publisher(producer)
    bad = Msg(5, partition_=1, key_=b"orig", value_=b"\x00bad", headers_=[("traceparent", b"t")])
    publish.publish(Outcome(dead=[(bad, Failure("decode", "DecodeError", "truncated"))]))
    ((topic, key, value, headers),) = producer.produced
    assert (topic, key, value) == ("dlq", b"orig", b"\x00bad")
    assert ("traceparent", b"t") in headers
    assert read_packflow_headers(headers) == {
        "stage": "decode",
        "error.type": "DecodeError",
        "error.message": "truncated",
        "source.topic": "in",
        "source.partition": "1",
        "source.offset": "5",
        "backend": "model",
        "backend.version": "3",
        "attempts": "1",
    }
    assert log.named("dead_letter")[0]["stage"] == "decode"


def test_a_result_too_large_to_produce_becomes_a_dead_letter_with_stage_publish() -> None:
    producer = FakeProducer(max_bytes=100)
    publish, failures, _ = publisher(producer)
    big = Msg(1, key_=b"k1", value_=b"in1")
    outcome: Outcome[Any] = Outcome(
        results=[(Msg(0), "id-0", b"r0"), (big, "id-1", b"x" * 101), (Msg(2), "id-2", b"r2")]
    )
    assert publish.publish(outcome) == ["id-1"]
    assert [(t, k, v) for t, k, v, _ in producer.produced] == [
        ("results", b"id-0", b"r0"),
        ("results", b"id-2", b"r2"),
        ("dlq", b"k1", b"in1"),
    ]
    assert [key for _, key, _ in outcome.results] == ["id-0", "id-2"]
    ((message, failure),) = outcome.dead
    assert message is big
    assert (failure.stage, failure.error_type) == ("publish", "MSG_SIZE_TOO_LARGE")
    headers = read_packflow_headers(producer.produced[-1][3])
    assert headers["stage"] == "publish"
    assert headers["error.type"] == "MSG_SIZE_TOO_LARGE"
    assert "truncated" not in headers
    assert failures == []  # nothing stops the replica


def test_a_dead_letter_too_large_to_produce_carries_a_truncated_copy_its_size_and_sha256() -> None:
    producer = FakeProducer(max_bytes=TRUNCATED_BYTES + 10)
    publish, _, log = publisher(producer)
    value = bytes(range(256)) * (TRUNCATED_BYTES // 128)  # twice the cut
    bad = Msg(3, key_=b"orig", value_=value)
    publish.publish(Outcome(dead=[(bad, Failure("backend", "ValueError", "no", attempts=4))]))
    ((topic, key, copy, headers),) = producer.produced
    assert (topic, key, copy) == ("dlq", b"orig", value[:TRUNCATED_BYTES])
    read = read_packflow_headers(headers)
    assert read["truncated"] == "true"
    assert read["original.size"] == str(len(value))
    assert read["original.sha256"] == hashlib.sha256(value).hexdigest()
    assert read["attempts"] == "4"
    assert log.named("dead_letter_truncated")


def test_a_refused_dead_letter_that_is_not_large_is_an_error() -> None:
    producer = FakeProducer(max_bytes=2)
    publish, _, _ = publisher(producer)
    with pytest.raises(PublishRejected):
        publish.publish(Outcome(dead=[(Msg(0, value_=b"abc"), Failure("decode", "E", "m"))]))


def test_a_failed_delivery_stops_the_replica_only_when_the_checkpoint_says_so() -> None:
    error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large")
    fatal, failures, log = publisher(FakeProducer(), fatal_on_failure=True)
    fatal.delivered(None, Msg(0))  # success is not reported as a failure
    fatal.delivered(error, Msg(0))
    assert failures == ["producer: too large"]
    assert [level for level, e, _ in log.events if e == "delivery_failed"] == ["error"]
    tolerant, failures, log = publisher(FakeProducer(), fatal_on_failure=False)
    tolerant.delivered(error, Msg(0))
    assert failures == []
    assert [level for level, e, _ in log.events if e == "delivery_failed"] == ["warning"]


def test_a_topic_that_refuses_our_writes_is_one_line_and_a_stop_not_one_per_record() -> None:
    refused = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed")
    path, failures, log = publisher(FakeProducer())
    for _ in range(3):  # reports of records already in flight
        path.delivered(refused, Msg(0, topic_="results"))
    assert [e for _, e, _ in log.events] == ["not_authorized"]
    assert log.named("not_authorized")[0]["topics"] == ["results"]
    assert len(failures) == 3 and "Write to topic results" in failures[0]
    assert path.undelivered == 3  # never counted as answered
    # Once librdkafka knows, produce() itself refuses: the same, not a worker bug.
    producer = FakeProducer(refuse=refused)
    path, failures, log = publisher(producer)
    outcome: Outcome[Any] = Outcome(results=[(Msg(0), "k", b"v")])
    with pytest.raises(NotAuthorized, match="results"):
        path.publish(outcome)


@pytest.mark.parametrize(
    ("code", "text"),
    [(KafkaError._FATAL, "Fatal error"), (KafkaError._STATE, "Erroneous state")],
)
def test_a_producer_that_failed_for_good_is_a_stop_not_a_worker_bug_nor_a_dead_letter(
    code: int, text: str
) -> None:
    # What produce() raises once the transaction was refused on the fetch side (CI saw the
    # worker meet each before the replica had stopped).
    fatal = KafkaError(code, f"Unable to produce message: Local: {text}")
    path, failures, log = publisher(FakeProducer(refuse=fatal))
    outcome: Outcome[Any] = Outcome(results=[(Msg(0), "k", b"v")])
    with pytest.raises(FencedError, match=text):
        path.publish(outcome)
    assert failures == [] and log.events == []


# -- BatchGate ----------------------------------------------------------------------------------


def test_the_gate_gives_the_fetch_side_a_turn_only_when_asked_and_between_batches() -> None:
    gate = BatchGate()
    with gate.turn() as between:
        assert not between  # nobody asked
    gate.ask()
    running, release = threading.Event(), threading.Event()

    def batch() -> None:
        with gate.batch():
            running.set()
            release.wait(5)

    worker = threading.Thread(target=batch)
    worker.start()
    running.wait(5)
    with gate.turn(wait_s=0.05) as between:
        assert not between  # a batch is running
    assert gate.asked  # still asked: the worker takes no new batch
    release.set()
    worker.join()
    with gate.turn() as between:
        assert between
    assert not gate.asked  # the turn ended the request


def test_released_lets_the_fetch_side_commit_in_the_middle_of_a_batch() -> None:
    gate = BatchGate()
    with gate.batch():
        gate.ask()
        with gate.turn(wait_s=0.01) as between:
            assert not between  # the batch holds the gate
        with gate.released():
            turns = []

            def fetch_side() -> None:
                with gate.turn(wait_s=1) as between:
                    turns.append(between)

            fetcher = threading.Thread(target=fetch_side)
            fetcher.start()
            fetcher.join(5)
            assert turns == [True]
    assert not gate.asked


def test_between_holds_the_gate_until_a_deadline() -> None:
    gate = BatchGate()
    with gate.batch(), gate.between(time.monotonic() + 0.05) as between:
        pass
    assert not between
    with gate.between(time.monotonic() + 1) as between:
        assert between
    assert gate.asked  # the fetch side's next turn commits


# -- DataPath: a retry's backoff ----------------------------------------------------------------


class FailsFirst(InferenceBackend):
    """Echoes ids; its first call raises (and says so through `failed`)."""

    name = "fails-first"

    def initialize(self) -> None:
        self.failed = threading.Event()

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.failed.is_set():
            self.failed.set()
            raise ConnectionError("hiccup")
        return [{"id": r["id"]} for r in inputs]


def waiting_path() -> tuple[DataPath, FailsFirst, FakeProducer, Taken[Any]]:
    """A data path over fakes holding A and B, and a batch taken of both; its backend's
    first call fails, so the batch waits 1 s before its retry."""
    backend = FailsFirst()
    path, producer, taken = data_path(
        backend, RetryPolicy(attempts=1, backoff_s=2.0, backoff_max_s=2.0, jitter=lambda: 0.0)
    )
    return path, backend, producer, taken


def data_path(
    backend: InferenceBackend,
    retries: RetryPolicy,
    decoder: Any = None,
    settings: RuntimeSettings | None = None,
) -> tuple[DataPath, FakeProducer, Taken[Any]]:
    """A data path over fakes holding A and B (two records each, ids "<partition>-<i>"),
    and a batch taken of both."""
    producer, consumer, log = FakeProducer(), FakeConsumer(), Log()
    answered = AnsweredKeys(100, 60)
    pipeline = Pipeline(
        backend,
        decoder or make_decoder("schemaless", "demo_input"),
        make_result_encoder("json"),
        answered,
        "id",
        retries,
    )
    assignment: Assignment[Any] = Assignment(PartitionQueues(100))
    assignment.assign([A, B])
    publish, _, _ = publisher(producer)
    path = DataPath(
        settings=settings or RuntimeSettings(),
        index=0,
        log=log,
        state=RunState(),
        metrics=ReplicaMetrics(),
        probes=None,  # type: ignore[arg-type]
        consumer=consumer,  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
        pipeline=pipeline,
        assignment=assignment,
        backpressure=Backpressure(consumer, assignment.queues.size, limit=100),
        checkpoint=AtLeastOnce(consumer, producer, 60.0, log),
        publisher=publish,
        answered=answered,
        quarantine=Quarantine(3, "test-0", None),
        registry_wait=RegistryWait(RetryPolicy(0, 0.5, 30.0, jitter=lambda: 1.0)),
        reach=None,  # type: ignore[arg-type]
    )
    pipeline.wait = path.backoff
    encode = make_encoder("schemaless", "demo_input").encode
    records = {tp: [Msg(i, partition_=tp[1], value_=encode(rec(f"{tp[1]}-{i}"))) for i in range(2)]
               for tp in (A, B)}  # fmt: skip
    assignment.accept(records)
    taken = assignment.take(10, 0.05)
    assert sorted(tp for tp, _ in taken.runs) == [A, B]
    return path, producer, taken


def rec(id_: str) -> dict[str, Any]:
    return {"id": id_, "timestamp": 0, **{f"x{j}": 0.0 for j in range(16)}}


def test_a_revoke_during_a_backoff_gets_the_gate_and_the_batch_drops_what_it_took() -> None:
    path, backend, producer, taken = waiting_path()
    had: list[bool] = []

    def revoke() -> None:  # as DataPath._release does, on the fetch side
        backend.failed.wait(5)
        path.assignment.release({B})
        with path.gate.between(time.monotonic() + 0.3) as between:
            had.append(between)

    fetch_side = threading.Thread(target=revoke)
    fetch_side.start()
    with path.gate.batch():
        path._complete(taken, None)
    fetch_side.join(5)
    assert had == [True]  # the fetch side had the gate while the batch waited
    assert [key for _, key, _, _ in producer.produced] == [b"0-0", b"0-1"]  # A's only
    assert path.checkpoint.tracker.to_commit() == {A: 2}  # type: ignore[attr-defined]
    assert path.answered.claim(["1-0", "1-1", "0-0"]) == [True, True, False]  # B's forgotten
    assert path.counts["retries"] == 1


def test_a_stop_during_a_backoff_gives_the_batch_up_uncommitted() -> None:
    path, backend, producer, taken = waiting_path()

    def stop() -> None:
        backend.failed.wait(5)
        path._worker_stop.set()

    stopper = threading.Thread(target=stop)
    stopper.start()
    started = time.monotonic()
    with path.gate.batch():
        path._complete(taken, None)
    stopper.join(5)
    assert time.monotonic() - started < 0.8  # not the whole 1 s backoff
    assert producer.produced == []
    assert path.checkpoint.tracker.to_commit() == {}  # type: ignore[attr-defined]
    assert path.answered.claim(["0-0", "1-0"]) == [True, True]  # read again, answered then
    assert path.log.named("batch_given_up")[0]["records"] == 4


def hung(held_s: float) -> tuple[DataPath, FakeConsumer, threading.Event]:
    """A data path whose worker is stuck in a careful batch of A (marked at offset 5) begun 1 s
    ago, under `execute_timeout_s=0.2`; it holds the gate until the event is set."""
    settings = RuntimeSettings(execute_timeout_s=0.2)
    path, _, _ = data_path(FailsFirst(), RetryPolicy(0, 0.1, 0.1), settings=settings)
    path._executing = (time.monotonic() - held_s, {A: Mark(5, 2, 9, "test-0")}, [A[1]])
    stuck, release = threading.Event(), threading.Event()

    def worker() -> None:
        with path.gate.batch():
            stuck.set()
            release.wait(5)

    threading.Thread(target=worker, daemon=True).start()
    stuck.wait(5)
    return path, path.consumer, release  # type: ignore[return-value]


def test_a_batch_hung_past_its_timeout_when_its_partition_is_revoked_is_marked_timed_out() -> None:
    path, consumer, release = hung(held_s=1.0)
    try:
        # The revoke callback: the watchdog would come too late (the generation moves on).
        path._release({A}, commit=True)
        mark = parse_mark(consumer.metadata[A])
        assert mark == Mark(5, 2, 9, "test-0", exits=("timeout",), timeout=True)
        assert len(consumer.commits) == 1
        # The watchdog then writes it neither again nor for partitions no longer held.
        path._mark_timed_out({A: Mark(5, 2, 9), B: Mark(3, 1, 4)}, {A})
        assert len(consumer.commits) == 1
    finally:
        release.set()


def test_a_commit_asked_as_a_rebalance_begins_is_answered_while_the_consumer_is_served() -> None:
    # librdkafka answers it only once the rebalance, served by polling, is through.
    consumer = FakeConsumer(hang_commit=threading.Event())
    served: list[int] = []

    def serve() -> None:
        served.append(1)
        if len(served) == 3:
            consumer.hang_commit.set()  # type: ignore[union-attr]
        time.sleep(0.01)

    commit_sync(consumer, [TopicPartition("in", 0, 5)], wait_s=5, serve=serve)
    assert len(served) >= 3
    assert consumer.commits == [([("in", 0, 5)], False)]


def test_the_watchdog_polls_while_its_mark_commits_and_the_revoke_it_serves_marks_first() -> None:
    path, consumer, release = hung(held_s=1.0)
    path.assignment.assign([A])
    waiting = consumer.hang_commit = threading.Event()

    def serve() -> None:  # a rebalance takes A: its revoke callback runs inside the poll
        if A in path.assignment.held():
            consumer.hang_commit = None
            path._release({A}, commit=True)
            consumer.fail_commit = True  # the watchdog's own commit: generation moved on
            waiting.set()

    try:
        executing = path._executing
        assert executing is not None
        path._mark_timed_out(executing[1], None, serve=serve)
        mark = parse_mark(consumer.metadata[A])
        assert mark == Mark(5, 2, 9, "test-0", exits=("timeout",), timeout=True)
        assert len(consumer.commits) == 1  # the revoke callback's
        assert path.log.named("mark_failed") == []  # the failure came after it was marked
    finally:
        release.set()


def test_a_hung_batch_of_partitions_lost_is_not_marked_timed_out() -> None:
    path, consumer, release = hung(held_s=1.0)
    try:
        path._release({A}, commit=False)  # lost: no longer ours to commit
        assert consumer.commits == []
    finally:
        release.set()


def test_a_batch_still_within_its_timeout_when_the_replica_stops_is_not_marked_timed_out() -> None:
    path, consumer, release = hung(held_s=0.0)
    try:
        path._shutdown_by = time.monotonic() + 0.05  # the stop's deadline comes first
        path._release({A}, commit=True)
        assert consumer.commits == []
    finally:
        release.set()


def test_the_producer_is_fitted_to_a_topic_limit_lower_than_its_own() -> None:
    from packflow.runtime.publisher import fit_to_topics

    config = {"acks": "all"}
    assert fit_to_topics(config, None) == (config, None)  # unknown: unchanged
    assert fit_to_topics(config, 1_048_588) == (config, None)  # the broker's default: above
    fitted, limit = fit_to_topics(config, 200_000)
    assert limit == 198_976
    assert fitted == {"acks": "all", "message.max.bytes": 198_976, "batch.size": 198_976}
    small = {"batch.size": 16_384}
    assert fit_to_topics(small, 200_000)[0] == {"batch.size": 16_384, "message.max.bytes": 198_976}
