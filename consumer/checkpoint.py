"""When consumed offsets are committed: the one place where the two guarantees differ.

A replica runs batches on its worker thread and commits between them on its fetch thread
(`BatchGate`). What a commit is depends on the guarantee, and only this module knows it:

- `AtLeastOnce`: a partition's position moves once a batch's outputs were handed to the
  producer (consumer/offsets.py); a commit flushes the producer and commits the positions of
  what it has seen acknowledged. A crash may repeat results, never lose one.
- `ExactlyOnce`: outputs and offsets go in one Kafka transaction (consumer/transactions.py),
  committed every interval, or at once when the input is idle. An aborted transaction says
  what to re-read (`Aborted`); a fenced producer raises `FencedError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from .offsets import OffsetTracker
from .settings import RuntimeSettings
from .transactions import Aborted, FencedError, Transaction

__all__ = [
    "COMMIT_WAIT_S",
    "FLUSH_WAIT_S",
    "Aborted",
    "AtLeastOnce",
    "BatchGate",
    "Checkpoint",
    "ExactlyOnce",
    "FencedError",
    "Read",
    "commit_sync",
    "open_checkpoint",
    "rebalance_callback",
]

TP = tuple[str, int]
# Per partition run of a batch: the partition, the first and the last offset read.
Read = tuple[TP, int, int]
FLUSH_WAIT_S = 5.0  # for acknowledgements before a periodic commit; later ones retry
COMMIT_WAIT_S = 15.0  # for a synchronous commit's answer


_callback = threading.local()


@contextmanager
def rebalance_callback() -> Iterator[None]:
    """Around a rebalance callback's body: a commit_sync inside it commits on this thread.
    (A synchronous commit from another thread while this one is inside the callback is
    answered only after the callback returns: never, while the callback waits on it.)"""
    _callback.depth = getattr(_callback, "depth", 0) + 1
    try:
        yield
    finally:
        _callback.depth -= 1


def commit_sync(
    consumer: Any,
    offsets: list[TopicPartition],
    wait_s: float = COMMIT_WAIT_S,
    serve: Callable[[], object] | None = None,
) -> None:
    """consumer.commit(offsets), synchronously, returning within `wait_s`: librdkafka waits
    for its answer without end, and one begun as the broker went away was seen never to
    return, the fetch loop (which alone serves the rebalance it then waits on) stuck for good.
    Raises KafkaException then, as for a failed commit (it may still land later: a commit
    only ever moves to offsets that were right when it was asked).

    `serve` (the consumer's poll, outside a rebalance callback) is called while waiting: a
    commit asked as a rebalance begins is answered only once the rebalance, which the fetch
    loop serves, is through. Inside a rebalance callback (`rebalance_callback`) the commit
    is made on the calling thread, unbounded: only there is it answered."""
    if getattr(_callback, "depth", 0):
        consumer.commit(offsets=offsets, asynchronous=False)
        return
    raised: list[KafkaException] = []
    done = threading.Event()

    def commit() -> None:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raised.append(exc)
        finally:
            done.set()

    threading.Thread(target=commit, name="commit", daemon=True).start()
    if serve is not None:
        until = time.monotonic() + wait_s
        while not done.is_set() and time.monotonic() < until:
            serve()
    if not done.wait(0 if serve is not None else wait_s):
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, f"commit not answered within {wait_s:g}s")
        )
    if raised:
        raise raised[0]


class Checkpoint(Protocol):
    """What the replica asks of a guarantee, in the order of a batch's life."""

    def begin(self) -> None:
        """Before a batch's outputs are produced."""

    def done(self, read: Sequence[Read], keys: Sequence[str]) -> None:
        """After a batch's outputs were produced: what it read, and the keys it answered."""

    def due(self, idle: bool) -> bool:
        """Whether to commit now (asked after every batch; `idle`: the batch was empty)."""

    def commit(
        self,
        only: Collection[TP] | None = None,
        wait_s: float = FLUSH_WAIT_S,
        periodic: bool = False,
    ) -> Aborted | None:
        """(between batches) Commit what is done (of `only` these partitions, where the
        guarantee can tell them apart). Returns what to re-read when the commit aborted."""

    def mark(
        self, marks: Mapping[TP, tuple[int, str]], wait_s: float = FLUSH_WAIT_S
    ) -> Aborted | None:
        """(between batches) Commit what is done, with these partitions' offsets set to
        (offset, metadata) (consumer/quarantine.py), synchronously. When that fails, the
        caller runs on unmarked; returns what to re-read when it aborted."""

    def position(self, tp: TP) -> int | None:
        """The offset a commit of this partition would commit now (None: nothing done)."""

    def abandon(self) -> Aborted | None:
        """(between batches) Partitions were lost to another member: drop uncommitted work."""

    def forget(self, partitions: Collection[TP]) -> None:
        """Stop tracking released partitions (their next owner starts from the commit)."""

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The consumer's commit callback."""

    def delivery_failed(self) -> bool:
        """An output failed for good; True when the replica must stop."""


class AtLeastOnce:
    """Flush, then commit the positions of what was acknowledged."""

    def __init__(self, consumer: Any, producer: Any, interval_s: float, log: Any) -> None:
        self.consumer = consumer
        self.producer = producer
        self.interval_s = interval_s
        self.log = log
        self.tracker = OffsetTracker()
        self._next_at = time.monotonic() + interval_s
        self._failed = False

    def begin(self) -> None:
        pass

    def done(self, read: Sequence[Read], keys: Sequence[str]) -> None:
        self.tracker.published({tp: last + 1 for tp, _, last in read})

    def due(self, idle: bool) -> bool:
        return time.monotonic() >= self._next_at

    def commit(
        self,
        only: Collection[TP] | None = None,
        wait_s: float = FLUSH_WAIT_S,
        periodic: bool = False,
    ) -> Aborted | None:
        # Periodic commits are asynchronous (only the flush is waited for); those before
        # partitions go, or before the replica stops, are synchronous.
        if periodic:
            self._next_at = time.monotonic() + self.interval_s
        positions = self.tracker.to_commit()
        if only is not None:
            positions = {tp: o for tp, o in positions.items() if tp in only}
        if not positions:
            return None
        unacknowledged = self.producer.flush(wait_s)
        if unacknowledged or self._failed:
            # Not all of it is acknowledged yet (a broker away): commit nothing now; the next
            # commit tries again, or the partitions' next owner re-reads them.
            self.log.warning("commit_deferred", unacknowledged=unacknowledged)
            return None
        try:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            if periodic:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            else:
                commit_sync(self.consumer, offsets)
        except KafkaException as exc:
            # Not fatal: the same positions are committed on the next attempt, or re-read
            # by the partitions' next owner.
            self.log.warning("commit_failed", error=str(exc.args[0]))
            return None
        self.tracker.committed(positions)
        return None

    def mark(
        self, marks: Mapping[TP, tuple[int, str]], wait_s: float = FLUSH_WAIT_S
    ) -> Aborted | None:
        positions = self.tracker.to_commit()
        if self.producer.flush(wait_s) or self._failed:
            self.log.warning("mark_deferred", partitions=sorted(p for _, p in marks))
            return None
        offsets = [
            TopicPartition(t, p, o) for (t, p), o in positions.items() if (t, p) not in marks
        ]
        offsets += [TopicPartition(t, p, o, metadata=m) for (t, p), (o, m) in marks.items()]
        try:
            commit_sync(self.consumer, offsets)
        except KafkaException as exc:
            self.log.warning("mark_failed", error=str(exc.args[0]))
            return None
        self.tracker.committed(positions | {tp: o for tp, (o, _) in marks.items()})
        return None

    def position(self, tp: TP) -> int | None:
        return self.tracker.position(tp)

    def abandon(self) -> Aborted | None:
        return None  # what was not committed is read again by the partitions' next owner

    def forget(self, partitions: Collection[TP]) -> None:
        self.tracker.forget(list(partitions))

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is None:
            return
        # An asynchronous commit failed: commit these positions again next time (a failure
        # only ever repeats results; it cannot lose one).
        self.tracker.retry([(p.topic, p.partition) for p in partitions])
        self.log.warning("commit_failed", error=error.str())

    def delivery_failed(self) -> bool:
        # librdkafka already retried; committing past the record would lose it.
        self._failed = True
        return True


class ExactlyOnce:
    """One transaction at a time: begun by the first batch, committed when due."""

    def __init__(self, transaction: Transaction, timeout_s: float) -> None:
        self.transaction = transaction
        self.timeout_s = timeout_s

    def begin(self) -> None:
        self.transaction.begin()

    def done(self, read: Sequence[Read], keys: Sequence[str]) -> None:
        self.transaction.read(read, keys)

    def due(self, idle: bool) -> bool:
        # Committing at once when the input is idle keeps a trickle's latency low.
        return self.transaction.due() or (idle and self.transaction.open)

    def commit(
        self,
        only: Collection[TP] | None = None,
        wait_s: float = FLUSH_WAIT_S,
        periodic: bool = False,
    ) -> Aborted | None:
        # The transaction holds every partition's offsets: it commits whole.
        return self.transaction.commit(self.timeout_s)

    def mark(
        self, marks: Mapping[TP, tuple[int, str]], wait_s: float = FLUSH_WAIT_S
    ) -> Aborted | None:
        # The marks go with the transaction's offsets: visible once it commits.
        return self.transaction.mark(marks, self.timeout_s)

    def position(self, tp: TP) -> int | None:
        return self.transaction.next.get(tp)

    def abandon(self) -> Aborted | None:
        # Its commit would be fenced: abort, and have the caller forget what it answered.
        return self.transaction.abort(self.timeout_s) if self.transaction.open else None

    def forget(self, partitions: Collection[TP]) -> None:
        pass  # the transaction's offsets are the record

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        pass  # offsets are committed by the transaction, never by the consumer

    def delivery_failed(self) -> bool:
        return False  # the transaction's commit fails on it and is aborted: read again


def open_checkpoint(
    settings: RuntimeSettings, consumer: Any, producer: Any, log: Any
) -> AtLeastOnce | ExactlyOnce:
    """The settings' guarantee over these clients (exactly-once: after `init_transactions`,
    which fences an earlier instance with the same id and aborts its open transaction)."""
    interval_s = settings.commit_interval_ms / 1000
    if settings.guarantee == "exactly-once":
        producer.init_transactions(settings.shutdown_timeout_s)
        return ExactlyOnce(Transaction(producer, consumer, interval_s), settings.shutdown_timeout_s)
    return AtLeastOnce(consumer, producer, interval_s, log)


class BatchGate:
    """The worker runs each batch holding the gate; the fetch side commits between batches.

    A commit asked for (`ask`) keeps the worker from taking its next batch until the fetch
    side had its turn, so that a steady stream of batches cannot starve commits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = threading.Event()

    def ask(self) -> None:
        self._asked.set()

    @property
    def asked(self) -> bool:
        return self._asked.is_set()

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            yield

    @contextmanager
    def released(self) -> Iterator[None]:
        """(worker, holding the gate) Let the fetch side commit and rebalance meanwhile:
        around a retry's backoff, so that a long wait holds no commit back."""
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()

    @contextmanager
    def turn(self, wait_s: float = 0.05) -> Iterator[bool]:
        """(fetch side) If a commit was asked for, wait up to `wait_s` for the worker to be
        between batches; yields whether it is (then the turn ends the request)."""
        had = self._asked.is_set() and self._lock.acquire(timeout=wait_s)
        try:
            yield had
        finally:
            if had:
                self._asked.clear()
                self._lock.release()

    @contextmanager
    def between(self, deadline: float) -> Iterator[bool]:
        """(rebalance, shutdown) Hold the gate until `deadline` at most; yields whether it
        was had. The worker takes no new batch until the fetch side's next turn."""
        self._asked.set()
        had = self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            yield had
        finally:
            if had:
                self._lock.release()
