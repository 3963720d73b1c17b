"""Partitions waiting for a Schema Registry that is away.

A record whose writer schema is not cached yet cannot be decoded while the registry cannot be
asked (refused, timed out): that is the registry's outage, not the record's fault, so it is
neither a dead letter nor a crash. The worker rewinds the partitions whose records needed it
(they are read again from their first unanswered record) and puts them here; the fetch side
keeps them paused until their backoff passes (`Backpressure`), then tries again; other
partitions flow meanwhile. The backoff grows per partition, jittered, up to its ceiling, and
resets once a batch of the partition decodes.

Pure bookkeeping (the clock is given); thread-safe: the worker writes, the fetch side and
`/readyz` read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from .retries import RetryPolicy

__all__ = ["RegistryWait"]

TP = tuple[str, int]


@dataclass
class _Waiting:
    since: float
    until: float
    attempts: int
    error: str


class RegistryWait:
    def __init__(self, backoff: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff
        self.clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[TP, _Waiting] = {}

    @property
    def active(self) -> bool:
        return bool(self._waiting)

    def away(self, partitions: Collection[TP], error: str) -> tuple[list[TP], float]:
        """(worker) These partitions' records need the registry, which cannot be asked:
        returns those that begin waiting now (the others were waiting already) and the
        seconds until they are tried again."""
        now = self.clock()
        new = []
        delay = 0.0
        with self._lock:
            for tp in partitions:
                waiting = self._waiting.get(tp)
                if waiting is None:
                    waiting = self._waiting[tp] = _Waiting(now, now, 0, error)
                    new.append(tp)
                waiting.attempts += 1
                waiting.error = error
                delay = max(delay, self.backoff.delay(waiting.attempts))
                waiting.until = now + delay
        return new, delay

    def back(self, partitions: Collection[TP]) -> dict[TP, float]:
        """(worker) These partitions decoded: those that were waiting, with how long."""
        if not self._waiting:
            return {}
        now = self.clock()
        with self._lock:
            done = {tp: self._waiting.pop(tp) for tp in partitions if tp in self._waiting}
        return {tp: now - w.since for tp, w in done.items()}

    def until(self, tp: TP) -> float | None:
        """(fetch side) Until when to keep this partition paused; None: not waiting."""
        waiting = self._waiting.get(tp)
        return None if waiting is None else waiting.until

    def forget(self, partitions: Collection[TP]) -> None:
        """Released partitions: their next owner finds out for itself."""
        with self._lock:
            for tp in partitions:
                self._waiting.pop(tp, None)

    def reason(self) -> str | None:
        """Why partitions are waiting (for `/readyz`); None when none is."""
        with self._lock:
            if not self._waiting:
                return None
            parts = sorted(p for _, p in self._waiting)
            error = next(iter(self._waiting.values())).error
        return f"waiting for the schema registry (partitions {parts}): {error}"
