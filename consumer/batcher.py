"""Bounded per-partition queues between the fetch side and the inference side, and the
micro-batcher that drains them.

The fetch side puts consumed records per partition and pauses a partition whose queue is full;
the inference side takes micro-batches of up to `max_records`, waiting at most `max_wait_s`
after the oldest queued record arrived. A batch takes from partitions in turn, each in offset
order, so results of one partition are produced in offset order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class PartitionQueues(Generic[K, T]):
    def __init__(self, max_per_partition: int) -> None:
        self.max_per_partition = max_per_partition
        self._queues: dict[K, deque[T]] = {}
        # Per partition: [arrival time, records left] of each put, to know the oldest arrival.
        self._arrivals: dict[K, deque[list[float]]] = {}
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, key: K, items: Sequence[T]) -> None:
        if not items:
            return
        with self._cond:
            self._queues.setdefault(key, deque()).extend(items)
            self._arrivals.setdefault(key, deque()).append([time.monotonic(), len(items)])
            self._count += len(items)
            self._cond.notify()

    def size(self, key: K) -> int:
        with self._cond:
            queue = self._queues.get(key)
            return len(queue) if queue is not None else 0

    def __len__(self) -> int:
        return self._count

    def full(self, key: K) -> bool:
        return self.size(key) >= self.max_per_partition

    def drop(self, keys: Iterable[K]) -> list[T]:
        """Remove and return what is queued for these partitions (on revoke)."""
        dropped: list[T] = []
        with self._cond:
            for key in keys:
                dropped.extend(self._queues.pop(key, ()))
                self._arrivals.pop(key, None)
            self._count -= len(dropped)
        return dropped

    def close(self) -> None:
        """Wake a waiting `take` so that it returns what is queued (or nothing)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, max_records: int, max_wait_s: float, idle_s: float = 0.1) -> list[T]:
        """The next micro-batch: as soon as `max_records` are queued, or `max_wait_s` after the
        oldest queued record arrived. Returns [] after `idle_s` with nothing queued, or when
        closed and empty."""
        return [item for _, run in self.take_runs(max_records, max_wait_s, idle_s) for item in run]

    def take_runs(
        self, max_records: int, max_wait_s: float, idle_s: float = 0.1
    ) -> list[tuple[K, list[T]]]:
        """`take`, as runs of consecutive records of one partition (a partition may have more
        than one run, in order): per-partition work needs no per-record lookups."""
        with self._cond:
            if not self._count and not self._closed:
                self._cond.wait(idle_s)
            if not self._count:
                return []
            deadline = self._oldest_arrival() + max_wait_s
            while self._count < max_records and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._pop(max_records)

    def _oldest_arrival(self) -> float:
        return min(chunks[0][0] for chunks in self._arrivals.values() if chunks)

    def _pop(self, max_records: int) -> list[tuple[K, list[T]]]:
        runs: list[tuple[K, list[T]]] = []
        taken = 0
        keys = [k for k, q in self._queues.items() if q]
        while keys and taken < max_records:
            share = max(1, (max_records - taken) // len(keys))
            for key in keys:
                queue, chunks = self._queues[key], self._arrivals[key]
                n = min(share, len(queue), max_records - taken)
                if not n:
                    continue
                runs.append((key, [queue.popleft() for _ in range(n)]))
                taken += n
                while n:
                    used = min(n, int(chunks[0][1]))
                    chunks[0][1] -= used
                    n -= used
                    if not chunks[0][1]:
                        chunks.popleft()
            keys = [k for k in keys if self._queues[k]]
        self._count -= taken
        return runs
