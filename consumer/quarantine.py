"""Crash-loop quarantine: finding the record that kills the replica process, counting its
attempts in Kafka, and dead-lettering it instead of running it again.

The all-good hot path costs nothing: a replica is careful only with what it re-reads after an
assignment. The attempt count lives in the committed offset's metadata of the partition (so it
survives a move to another machine), as a `Mark`: "runs starting at `offset` and reaching up
to `end` were begun `attempt` times and never got past it".

- A partition newly assigned whose committed offset carries no mark (or a stale one) is
  *guarded* for the records it already held when it was assigned (its high watermark then:
  the previous owner may have run them, and died on one; for a partition never committed,
  its first batch only): before each batch of them runs, the
  batch's first offset is committed with the mark `attempt 1, end = its last offset`; a normal
  commit (no metadata) after the last clears it. Records that arrive later run unmarked.
- A partition whose committed offset carries a mark at that very offset had its previous
  owner die inside the marked range: it is *narrowed*. Each record of the range runs alone,
  after its own mark (`attempt` = the count so far at its offset, plus one); a record whose
  count already reached `max_crash_attempts` is dead-lettered (stage `crash`, or `timeout`
  when the watchdog ended the last attempt) instead of running. Past the range, the next
  commit clears the mark and full batches resume.

So a poison record ends as a dead letter after at most `max_crash_attempts + 2` process
deaths: one in an unguarded batch (its partition is then re-read, guarded), one in the
guarded batch, and `max_crash_attempts` alone (one fewer when it is the range's first record,
whose count the guarded batch started).

Pure bookkeeping here; the replica writes the marks through its `Checkpoint`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from .assignment import per_partition

__all__ = ["TIMEOUT_EXIT", "Mark", "Quarantine", "Step", "parse_mark"]

TP = tuple[str, int]
Reason = Literal["crash", "timeout"]
TIMEOUT_EXIT = 124  # a replica ended by the execution watchdog (as timeout(1) does)
_MAX_EXITS = 8
_FIRST_ONLY = -1  # a guard's `until` for a partition never committed  # exit codes kept in a mark (the broker's offset.metadata.max.bytes is 4096)


@dataclass(frozen=True)
class Mark:
    """Committed offset metadata: runs starting at `offset` (up to `end`) were begun
    `attempt` times without getting past it. `by`: the replica instance that wrote it;
    `exits`: the exit codes (negative: a signal) or reasons known of the attempts that died;
    `timeout`: the last attempt was ended by the execution watchdog."""

    offset: int
    attempt: int
    end: int
    by: str = ""
    exits: tuple[str, ...] = ()
    timeout: bool = False

    def encode(self) -> str:
        fields: dict[str, Any] = {"pf": 1, "offset": self.offset, "attempt": self.attempt}
        fields["end"] = self.end
        if self.by:
            fields["by"] = self.by
        if self.exits:
            fields["exits"] = list(self.exits[-_MAX_EXITS:])
        if self.timeout:
            fields["timeout"] = True
        return orjson.dumps(fields).decode()

    @property
    def reason(self) -> Reason:
        return "timeout" if self.timeout else "crash"


def parse_mark(metadata: str | None) -> Mark | None:
    """The mark in a committed offset's metadata; None for none, or for another writer's."""
    if not metadata:
        return None
    try:
        fields = orjson.loads(metadata)
        if not isinstance(fields, dict) or fields.get("pf") != 1:
            return None
        return Mark(
            offset=int(fields["offset"]),
            attempt=int(fields["attempt"]),
            end=int(fields["end"]),
            by=str(fields.get("by", "")),
            exits=tuple(str(e) for e in fields.get("exits", ())),
            timeout=bool(fields.get("timeout", False)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


@dataclass
class Step:
    """One step of a careful batch, in order. `run`: records to run as one batch, after
    writing `marks`. `quarantine`: (partition, record, mark) to dead-letter unrun."""

    run: list[tuple[TP, list[Any]]] = field(default_factory=list)
    marks: dict[TP, Mark] = field(default_factory=dict)
    quarantine: tuple[TP, Any, Mark] | None = None


@dataclass
class _Guard:
    mark: Mark | None  # None: guarded (mark each batch); else narrowing its range
    until: int  # the high watermark at assignment: records before it are re-read


def _offset(record: Any) -> int:
    return int(record.offset() or 0)


class Quarantine:
    """Per partition held: guarded, narrowing, or trusted (absent). The fetch side assigns
    and releases; the worker plans its batches. Thread-safe."""

    def __init__(self, max_attempts: int, instance: str, previous_exit: str | None) -> None:
        self.max_attempts = max_attempts
        self.instance = instance
        # How this replica's predecessor (same instance) ended, when it died: the exit of
        # the attempts its marks counted.
        self.previous_exit = previous_exit
        self._lock = threading.Lock()
        self._guards: dict[TP, _Guard] = {}

    @property
    def active(self) -> bool:
        """Whether any partition needs care (read on every batch: one attribute)."""
        return bool(self._guards)

    def narrowing(self) -> list[int]:
        with self._lock:
            return sorted(p for (_, p), g in self._guards.items() if g.mark is not None)

    def assigned(self, committed: Mapping[TP, tuple[int, str | None, int]]) -> dict[TP, Mark]:
        """Partitions gained, with their committed offset, its metadata and their high
        watermark (-1: unknown, guard them all); returns those to narrow (their previous
        owner died in the marked range)."""
        narrowed = {}
        with self._lock:
            for tp, (offset, metadata, high) in committed.items():
                until = high if high >= 0 else 1 << 62
                mark = parse_mark(metadata)
                if mark is not None and mark.offset == offset and offset >= 0:
                    # (A timeout's mark says so itself.)
                    known = mark.by == self.instance and not mark.timeout
                    if known and self.previous_exit is not None:
                        mark = replace(mark, exits=(*mark.exits, self.previous_exit))
                    self._guards[tp] = _Guard(mark, max(until, mark.end + 1))
                    narrowed[tp] = mark
                elif offset < 0:
                    # Never committed: nobody ran a marked batch of it. Guard its first batch
                    # only (a death there leaves a mark, and a commit to guard from next time).
                    self._guards[tp] = _Guard(None, _FIRST_ONLY)
                elif offset < until:
                    self._guards[tp] = _Guard(None, until)
        return narrowed

    def leaving(
        self, partitions: Collection[TP], position: Callable[[TP], int | None]
    ) -> dict[TP, Mark]:
        """Marks that hand the ranges being narrowed of these partitions, released cleanly,
        to their next owner: at the `position` done so far, with no attempt counted."""
        marks = {}
        with self._lock:
            for tp in partitions:
                guard = self._guards.get(tp)
                at = position(tp)
                mark = guard.mark if guard is not None else None
                if mark is not None and at is not None and at <= mark.end:
                    marks[tp] = Mark(at, 0, mark.end, self.instance)
        return marks

    def released(self, partitions: Sequence[TP]) -> None:
        with self._lock:
            for tp in partitions:
                self._guards.pop(tp, None)

    def plan(self, runs: Sequence[tuple[TP, list[Any]]]) -> list[Step] | None:
        """The steps of a batch (its runs, in offset order per partition); None when no run
        needs care, so the batch runs as it is."""
        with self._lock:
            if not any(tp in self._guards for tp, _ in runs):
                return None
            # A batch may hold a partition in more than one run: planned run by run, a later
            # run's step could go before an earlier one's, so a mark would rewind the
            # committed offset over records already answered.
            runs = per_partition(runs)
            trusted = Step()
            # One step per guarded partition: a death blames only that partition's batch.
            guarded: list[Step] = []
            careful: list[Step] = []
            after = Step()
            for tp, run in runs:
                guard = self._guards.get(tp)
                if guard is None:
                    trusted.run.append((tp, run))
                elif guard.mark is None:
                    first, last = _offset(run[0]), _offset(run[-1])
                    if first >= guard.until != _FIRST_ONLY:
                        trusted.run.append((tp, run))  # new records: nobody ran them
                    else:
                        marks = {tp: Mark(first, 1, last, self.instance)}
                        guarded.append(Step(run=[(tp, run)], marks=marks))
                    if last + 1 >= guard.until or guard.until == _FIRST_ONLY:
                        del self._guards[tp]
                else:
                    careful.extend(self._narrow(tp, run, guard, after))
            steps = [s for s in (trusted, *guarded, *careful, after) if s.run or s.quarantine]
            return steps

    def _narrow(self, tp: TP, run: list[Any], guard: _Guard, after: Step) -> list[Step]:
        mark = guard.mark
        assert mark is not None
        steps = []
        rest = []
        for record in run:
            offset = _offset(record)
            if offset > mark.end:
                rest.append(record)
                continue
            # The count so far belongs to the marked offset; any other record starts at 0.
            prior = mark if offset == mark.offset else Mark(offset, 0, mark.end)
            if prior.attempt >= self.max_attempts:
                steps.append(Step(quarantine=(tp, record, prior)))
            else:
                attempt = replace(prior, attempt=prior.attempt + 1, by=self.instance)
                steps.append(Step(run=[(tp, [record])], marks={tp: attempt}))
            # Once handled, the record is past: the next one starts its own count.
            mark = Mark(offset + 1, 0, mark.end)
        if rest or mark.offset > mark.end:
            # Past the range: full batches again (guarded, while re-read).
            guard.mark = None
            if mark.offset >= guard.until:
                del self._guards[tp]
        else:
            guard.mark = mark
        if rest:
            after.run.append((tp, rest))
        return steps
