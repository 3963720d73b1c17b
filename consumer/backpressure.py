"""Flow control between fetching and inference: hold, pause, resume.

A full partition queue first holds fetching for a moment (the worker drains it while
librdkafka keeps its prefetched records); a queue that stays full (a slow model) has its
partition paused, so that the fetch loop polls on (rebalances, `max.poll.interval.ms`) without
taking more. A paused partition resumes once its queue is half drained. Pausing at once would
make librdkafka drop and re-fetch its prefetched records at every pause, which costs a fast
pipeline a third of its rate.

A partition can also be held paused until a given time (`held_until`: one waiting for the
Schema Registry, consumer/registry_wait.py); after it, it resumes as a drained one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from confluent_kafka import TopicPartition

__all__ = ["HOLD_S", "Backpressure"]

TP = tuple[str, int]
HOLD_S = 1.0  # a full queue holds fetching this long before its partition is paused


class Pausing(Protocol):
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...


class Backpressure:
    """Used by the fetch side only."""

    def __init__(
        self,
        consumer: Pausing,
        size: Callable[[TP], int],
        limit: int,
        hold_s: float = HOLD_S,
        clock: Callable[[], float] = time.monotonic,
        held_until: Callable[[TP], float | None] = lambda tp: None,
    ) -> None:
        self.consumer = consumer
        self.size = size
        self.limit = limit
        self.hold_s = hold_s
        self.clock = clock
        self.held_until = held_until
        self.paused: set[TP] = set()
        self._full_since: dict[TP, float] = {}

    def fetch_now(self, held: Sequence[TP]) -> bool:
        """Pause and resume the partitions held as their queues fill and drain; returns
        whether to fetch now (not while a full queue is being held)."""
        now = self.clock()
        hold = False
        for tp in held:
            until = self.held_until(tp)
            if until is not None and now < until:
                if tp not in self.paused:
                    self.consumer.pause([TopicPartition(*tp)])
                    self.paused.add(tp)
                continue
            size = self.size(tp)
            if tp not in self.paused and size >= self.limit:
                since = self._full_since.setdefault(tp, now)
                if now - since < self.hold_s:
                    hold = True
                    continue
                del self._full_since[tp]
                self.consumer.pause([TopicPartition(*tp)])
                self.paused.add(tp)
            elif tp not in self.paused:
                self._full_since.pop(tp, None)
            elif size <= self.limit // 2:
                self.consumer.resume([TopicPartition(*tp)])
                self.paused.discard(tp)
        return not hold

    def forget(self, partitions: Collection[TP]) -> None:
        """Released partitions (a new owner starts them unpaused)."""
        self.paused -= set(partitions)
        for tp in partitions:
            self._full_since.pop(tp, None)
