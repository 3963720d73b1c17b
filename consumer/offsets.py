"""Which offsets may be committed: the highest contiguous done offset of each partition.

Pure bookkeeping, no Kafka calls. The replica tracks every consumed offset in consumption
order and marks it done once its result (or dead letter) was acknowledged by the broker, or
once it needs no output (a repeat dropped by the dedup cache). A partition's commit position
only moves past offsets that are all done, so a crash can repeat results but never lose one.
Offsets need not be consecutive integers (compaction, transaction markers leave gaps).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass
class _Partition:
    pending: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    position: int | None = None  # next offset to commit (last contiguous done + 1)
    committed: int | None = None


class OffsetTracker:
    """Thread-safe: the fetch side tracks, delivery callbacks mark done, the loop commits."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _Partition] = {}
        self._lock = threading.Lock()

    def track(self, tp: TopicPartition, offsets: list[int]) -> None:
        """Record consumed offsets, in consumption (ascending) order."""
        with self._lock:
            self._parts.setdefault(tp, _Partition()).pending.extend(offsets)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Mark one offset finished; advances the partition's position when contiguous."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None:
                return  # the partition was released meanwhile; its owner re-reads it
            part.done.add(offset)
            pending = part.pending
            while pending and pending[0] in part.done:
                first = pending.popleft()
                part.done.discard(first)
                part.position = first + 1

    def to_commit(self) -> dict[TopicPartition, int]:
        """Positions that moved since the last `committed()` call."""
        with self._lock:
            return {
                tp: p.position
                for tp, p in self._parts.items()
                if p.position is not None and p.position != p.committed
            }

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        with self._lock:
            for tp, position in positions.items():
                part = self._parts.get(tp)
                if part is not None:
                    part.committed = position

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Offsets consumed and not yet done (of one partition, or all)."""
        with self._lock:
            parts = [self._parts.get(tp)] if tp is not None else list(self._parts.values())
            return sum(len(p.pending) for p in parts if p is not None)

    def forget(self, tps: list[TopicPartition]) -> None:
        """Stop tracking released partitions."""
        with self._lock:
            for tp in tps:
                self._parts.pop(tp, None)
