"""Exactly-once output: results, dead letters and consumed offsets in one Kafka transaction.

A replica's transactional producer (KIP-447: offsets are sent with the consumer's group
metadata, so a member that lost its partitions in a rebalance is fenced) opens a transaction
at the first batch, adds each batch's output and the next offset of every partition the batch
read, and commits once the commit interval has passed. Readers with
`isolation.level=read_committed` then see each result exactly once.

A commit that fails with an abortable error is aborted: the caller must rewind the consumer to
where the transaction began and forget the keys it answered. A fatal error (the producer was
fenced by a newer instance) raises `FencedError`: the replica must stop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from packflow.errors import PackflowError

TP = tuple[str, int]
_COMMIT_ATTEMPTS = 5


class FencedError(PackflowError):
    """The transactional producer can no longer commit: a newer instance owns its id, or the
    group moved on. Its open transaction is lost (never visible to read_committed readers)."""


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

    @property
    def open(self) -> bool:
        return self.began is not None

    def begin(self) -> None:
        if self.began is None:
            self.producer.begin_transaction()
            self.began = time.monotonic()

    def read(self, offsets: Iterable[tuple[TP, int]], keys: Iterable[str]) -> None:
        """Record what a batch consumed (its offsets) and answered (its keys)."""
        for tp, offset in offsets:
            self.start.setdefault(tp, offset)
            if offset + 1 > self.next.get(tp, -1):
                self.next[tp] = offset + 1
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
                offsets = [TopicPartition(t, p, o) for (t, p), o in self.next.items()]
                metadata = self.consumer.consumer_group_metadata()
                self.producer.send_offsets_to_transaction(offsets, metadata, timeout_s)
            self._commit(timeout_s)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise FencedError(f"transaction cannot commit: {error.str()}") from exc
            return self.abort(timeout_s)
        self._reset()
        return None

    def abort(self, timeout_s: float = 30.0) -> Aborted:
        """Abort the open transaction; says where each partition must be re-read from."""
        aborted = Aborted(dict(self.start), list(self.keys))
        try:
            self.producer.abort_transaction(timeout_s)
        except KafkaException as exc:
            raise FencedError(f"transaction cannot abort: {exc.args[0].str()}") from exc
        self._reset()
        return aborted

    def _commit(self, timeout_s: float) -> None:
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                self.producer.commit_transaction(timeout_s)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == _COMMIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * 2**attempt)

    def _reset(self) -> None:
        self.began = None
        self.start = {}
        self.next = {}
        self.keys = []
