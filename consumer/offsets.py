"""Which offsets may be committed (at-least-once): per partition, the position after the last
record whose output was handed to the producer.

The worker processes each partition's records in offset order and marks a partition's
position once a batch's outputs (results, dead letters, or nothing for a repeat) were
produced. The commit side flushes the producer first (every output acknowledged, none
failed) and only then commits these positions, so a crash can repeat results but never lose
one. This replaces one delivery callback per output with one flush per commit interval.
Pure bookkeeping, no Kafka calls.
"""

from __future__ import annotations

import threading

TopicPartition = tuple[str, int]


class OffsetTracker:
    """Thread-safe: the worker marks, the fetch side commits."""

    def __init__(self) -> None:
        self._position: dict[TopicPartition, int] = {}  # next offset to commit
        self._committed: dict[TopicPartition, int] = {}
        self._lock = threading.Lock()

    def published(self, positions: dict[TopicPartition, int]) -> None:
        """The outputs of every record before these positions were produced."""
        with self._lock:
            for tp, position in positions.items():
                if position > self._position.get(tp, -1):
                    self._position[tp] = position

    def position(self, tp: TopicPartition) -> int | None:
        """The position of a partition's published outputs (None: none yet)."""
        with self._lock:
            return self._position.get(tp)

    def to_commit(self) -> dict[TopicPartition, int]:
        """Positions that moved since the last `committed()` call."""
        with self._lock:
            return {tp: p for tp, p in self._position.items() if p != self._committed.get(tp)}

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, position in positions.items():
                if tp in self._position:
                    self._committed[tp] = position

    def retry(self, tps: list[TopicPartition]) -> None:
        """Their last commit failed: `to_commit()` gives their positions again."""
        with self._lock:
            for tp in tps:
                self._committed.pop(tp, None)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Stop tracking released partitions (their next owner starts from the commit)."""
        with self._lock:
            for tp in tps:
                self._position.pop(tp, None)
                self._committed.pop(tp, None)
