"""The partitions a replica holds, their generations, their queued records, and rewinds.

Every partition held has a generation, renewed when it is assigned and when an aborted
transaction rewinds it: a batch taken under an older generation must not run, since its
records will be read again (by this replica from the rewind point, or by the partition's
next owner). Shared by the fetch side (assign, release, accept, seek) and the worker (take,
owned), so every method is thread-safe.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping, Sequence
from operator import methodcaller
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from .batcher import PartitionQueues

__all__ = ["Assignment", "Runs", "Taken", "by_partition", "first_and_last", "per_partition"]

TP = tuple[str, int]
M = TypeVar("M")
Runs = list[tuple[TP, list[M]]]


class Seeking(Protocol):
    def seek(self, partition: TopicPartition) -> None: ...


class Taken(Generic[M]):
    """A micro-batch taken from the queues: its runs and each partition's generation then."""

    __slots__ = ("generations", "runs")

    def __init__(self, runs: list[tuple[TP, list[M]]], generations: dict[TP, int]) -> None:
        self.runs = runs
        self.generations = generations


class Assignment(Generic[M]):
    def __init__(self, queues: PartitionQueues[TP, M]) -> None:
        self.queues = queues
        self._lock = threading.Lock()
        self._held: dict[TP, int] = {}
        self._generations = itertools.count(1)
        self._rewinding: set[TP] = set()  # fetched records of these predate a rewind's seek
        self._seeks: dict[TP, int] = {}

    def __len__(self) -> int:
        return len(self._held)

    def held(self) -> list[TP]:
        with self._lock:
            return list(self._held)

    def assign(self, partitions: Collection[TP]) -> list[int]:
        """Hold these partitions, each under a new generation; returns the partitions held."""
        with self._lock:
            for tp in partitions:
                self._held[tp] = next(self._generations)
            return sorted(p for _, p in self._held)

    def release(self, partitions: Collection[TP]) -> None:
        """Stop holding these partitions and drop their queued records."""
        with self._lock:
            for tp in partitions:
                self._held.pop(tp, None)
            self.queues.drop(partitions)

    def drop_queued(self) -> None:
        """Drop every queued record (shutdown: they are read again by the next owner)."""
        with self._lock:
            self.queues.drop(list(self._held))

    def accept(self, by_partition: Mapping[TP, list[M]]) -> int:
        """Queue fetched records, except those fetched before a rewind's seek (they will be
        read again from the rewind point); returns how many were queued."""
        queued = 0
        with self._lock:
            for tp, records in by_partition.items():
                if tp in self._rewinding:
                    continue
                self.queues.put(tp, records)
                queued += len(records)
        return queued

    def take(self, max_records: int, max_wait_s: float) -> Taken[M]:
        runs = self.queues.take_runs(max_records, max_wait_s)
        with self._lock:
            held = self._held
            return Taken(runs, {tp: held.get(tp, 0) for tp, _ in runs})

    def owned(self, taken: Taken[M]) -> list[tuple[TP, list[M]]]:
        """The runs of partitions still held under the generation they were taken with."""
        with self._lock:
            held = self._held
            return [(tp, run) for tp, run in taken.runs if held.get(tp) == taken.generations[tp]]

    def rewind(self, positions: Mapping[TP, int]) -> None:
        """Re-read these partitions from these offsets: batches taken before now are void,
        queued records dropped, and the fetch side seeks (`seek_rewound`)."""
        with self._lock:
            for tp in positions.keys() & self._held.keys():
                self._held[tp] = next(self._generations)
            self._rewinding |= positions.keys()
            self.queues.drop(positions.keys())
            self._seeks.update(positions)

    def seek_rewound(self, consumer: Seeking, log: Any) -> None:
        """(fetch side) Move rewound partitions back to where their aborted work began."""
        if not self._seeks:
            return
        with self._lock:
            seeks, self._seeks = self._seeks, {}
        for (topic, partition), offset in seeks.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer ours: its next owner reads it
                log.info("seek_skipped", partition=partition, error=str(exc.args[0]))
        with self._lock:
            self._rewinding -= seeks.keys()


def first_and_last(runs: Sequence[tuple[TP, Sequence[Any]]]) -> list[tuple[TP, int, int]]:
    """Per run (in offset order): the partition, its first and last offsets read."""
    return [(tp, run[0].offset() or 0, run[-1].offset() or 0) for tp, run in runs]


def per_partition(runs: Sequence[tuple[TP, list[M]]]) -> list[tuple[TP, list[M]]]:
    """A batch's runs as one run per partition (a batch may hold a partition in more than one
    run, in offset order; work that steps partition by partition must keep that order)."""
    merged: dict[TP, list[M]] = {}
    for tp, run in runs:
        merged.setdefault(tp, []).extend(run)
    return list(merged.items())


# C calls per message, without a Python frame each (methodcaller, not Message's own methods,
# so that any message-like object will do).
_ERROR, _TOPIC, _PARTITION = (methodcaller(m) for m in ("error", "topic", "partition"))


def by_partition(messages: list[Message]) -> tuple[dict[TP, list[Message]], list[KafkaError]]:
    """What one fetch returned, per partition in offset order, and the errors among it.

    This runs for every record read, so the common fetch (no errors, one topic, runs of
    one partition) is sorted by C calls only: no Python frame per record."""
    errors: list[KafkaError] = [e for e in map(_ERROR, messages) if e is not None]
    if errors:
        messages = [m for m in messages if m.error() is None]
    grouped: dict[TP, list[Message]] = {}
    topics = set(map(_TOPIC, messages))
    if len(topics) == 1:
        [topic] = topics
        for partition, run in itertools.groupby(messages, _PARTITION):
            tp = (topic, partition)
            found = grouped.get(tp)
            if found is None:
                grouped[tp] = list(run)
            else:
                found.extend(run)
    else:  # more than one topic (a pattern subscription): message by message
        for message in messages:
            tp = (message.topic(), message.partition())
            grouped.setdefault(tp, []).append(message)  # type: ignore[arg-type]
    return grouped, errors
