"""Exactly-once output: results, dead letters and consumed offsets in one Kafka transaction.

A replica's transactional producer (KIP-447: offsets are sent with the consumer's group
metadata, so a member that lost its partitions in a rebalance is fenced) opens a transaction
at the first batch, adds each batch's output and the next offset of every partition the batch
read, and commits once the commit interval has passed. Readers with
`isolation.level=read_committed` then see each result exactly once.

A commit that fails with an abortable error is aborted: the caller must rewind the consumer to
where the transaction began and forget the keys it answered. A fatal error (the producer was
fenced by a newer instance) raises `FencedError`: the replica must stop. So does a call that
hangs well past its own timeout (`StuckError`): librdkafka's send_offsets_to_transaction can
wait forever once the group coordinator went away (confluentinc/librdkafka#5456, #5511). The
replica's successor (same transactional.id) aborts whatever the stuck one left open.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from packflow.errors import PackflowError

TP = tuple[str, int]

_STUCK_GRACE_S = 10.0  # beyond a call's own timeout, before it counts as stuck


class FencedError(PackflowError):
    """The transactional producer can no longer commit: a newer instance owns its id, or the
    group moved on. Its open transaction is lost (never visible to read_committed readers)."""


class TransactionRefused(FencedError):
    """The broker refuses this replica's principal a right the transaction needs: Write on a
    topic it produced to, or on its transactional id. Nothing of it is visible."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(
            f"transaction refused: {error.str()}: the replica's principal needs Write and "
            "Describe on the results and dead-letter topics and on its transactional id "
            "(`packflow acls`)"
        )
        self.error = error


# The broker's refusals of a right: no retry helps, only an operator's grant (a produce's,
# a delivery's, a transaction's).
NOT_AUTHORIZED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }
)


class StuckError(FencedError):
    """A transactional call did not return long after its timeout: this producer is unusable.
    The process must exit without touching it again (its destructor could block too)."""


def _bounded(call: Callable[..., Any], *args: Any, timeout_s: float) -> None:
    """`call(*args, timeout_s)` in a daemon thread; raises what it raised, or StuckError when
    it has not returned `_STUCK_GRACE_S` after its own timeout."""
    raised: list[Exception] = []
    done = threading.Event()

    def target() -> None:
        try:
            call(*args, timeout_s)
        except Exception as exc:  # noqa: BLE001  # re-raised in the caller's thread
            raised.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name="transaction-call", daemon=True).start()
    if not done.wait(timeout_s + _STUCK_GRACE_S):
        name = getattr(call, "__name__", "transactional call")
        raise StuckError(f"{name} did not return within {timeout_s + _STUCK_GRACE_S:.0f}s")
    if raised:
        raise raised[0]


@dataclass(frozen=True)
class Aborted:
    """An aborted transaction: re-read each partition from `rewind`; forget `keys`."""

    rewind: dict[TP, int]
    keys: list[str]


class Transaction:
    """The open transaction of one replica (used by one thread at a time)."""

    def __init__(self, producer: Producer, consumer: Consumer, interval_s: float) -> None:
        self.producer = producer
        self.consumer = consumer
        self.interval_s = interval_s
        self.began: float | None = None
        self.start: dict[TP, int] = {}  # first offset per partition: where an abort rewinds to
        self.next: dict[TP, int] = {}  # the offsets to commit with the transaction
        self.keys: list[str] = []  # keys answered inside it
        self.metadata: dict[TP, str] = {}  # committed offset metadata (crash marks)

    @property
    def open(self) -> bool:
        return self.began is not None

    def begin(self) -> None:
        if self.began is None:
            self.producer.begin_transaction()
            self.began = time.monotonic()

    def read(self, runs: Iterable[tuple[TP, int, int]], keys: Iterable[str]) -> None:
        """Record what a batch consumed (per partition run: the first and last offsets read)
        and answered (its keys)."""
        for tp, first, last in runs:
            self.start.setdefault(tp, first)
            if last + 1 > self.next.get(tp, -1):
                self.next[tp] = last + 1
        self.keys.extend(keys)

    def due(self) -> bool:
        return self.began is not None and time.monotonic() - self.began >= self.interval_s

    def commit(self, timeout_s: float = 30.0) -> Aborted | None:
        """Commit the open transaction. Returns None when committed (or nothing was open);
        after an abortable error, aborts it and says what to re-read."""
        if self.began is None:
            return None
        try:
            if self.next:
                offsets = [
                    TopicPartition(t, p, o, metadata=self.metadata[(t, p)])
                    if (t, p) in self.metadata
                    else TopicPartition(t, p, o)
                    for (t, p), o in self.next.items()
                ]
                metadata = self.consumer.consumer_group_metadata()
                _bounded(
                    self.producer.send_offsets_to_transaction,
                    offsets,
                    metadata,
                    timeout_s=timeout_s,
                )
            self._commit(timeout_s)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() in NOT_AUTHORIZED:
                # Trying again cannot help; the abort itself may be refused (nothing was
                # added to the transaction), and it ends unseen either way.
                with contextlib.suppress(KafkaException):
                    _bounded(self.producer.abort_transaction, timeout_s=timeout_s)
                raise TransactionRefused(error) from exc
            if error.fatal() or not error.txn_requires_abort():
                raise FencedError(f"transaction cannot commit: {error.str()}") from exc
            return self.abort(timeout_s)
        self._reset()
        return None

    def mark(self, marks: Mapping[TP, tuple[int, str]], timeout_s: float = 30.0) -> Aborted | None:
        """Commit the transaction (opened if none is) with these offsets and metadata; says
        what to re-read when it aborted."""
        self.begin()
        for tp, (offset, metadata) in marks.items():
            self.next[tp] = offset
            self.metadata[tp] = metadata
        return self.commit(timeout_s)

    def abort(self, timeout_s: float = 30.0) -> Aborted:
        """Abort the open transaction; says where each partition must be re-read from."""
        aborted = Aborted(dict(self.start), list(self.keys))
        try:
            _bounded(self.producer.abort_transaction, timeout_s=timeout_s)
        except KafkaException as exc:
            raise FencedError(f"transaction cannot abort: {exc.args[0].str()}") from exc
        self._reset()
        return aborted

    def _commit(self, timeout_s: float) -> None:
        # Retriable errors (a coordinator moving, a broker restarting) are retried until the
        # timeout; the transaction stays open meanwhile, so nothing is lost or doubled.
        deadline = time.monotonic() + timeout_s
        pause = 0.1
        while True:
            try:
                _bounded(
                    self.producer.commit_transaction,
                    timeout_s=max(1.0, deadline - time.monotonic()),
                )
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(2.0, pause * 2)

    def _reset(self) -> None:
        self.began = None
        self.start = {}
        self.next = {}
        self.keys = []
        self.metadata = {}
