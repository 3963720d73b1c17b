from __future__ import annotations

import random

from consumer.offsets import OffsetTracker

TP = ("in", 0)


def test_commits_only_the_highest_contiguous_done_offset() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, [10, 11, 12, 13])
    tracker.done(TP, 12)
    tracker.done(TP, 13)
    assert tracker.to_commit() == {}  # 10 and 11 still in flight
    tracker.done(TP, 10)
    assert tracker.to_commit() == {TP: 11}
    tracker.committed({TP: 11})
    assert tracker.to_commit() == {}
    tracker.done(TP, 11)
    assert tracker.to_commit() == {TP: 14}
    assert tracker.in_flight() == 0


def test_gaps_in_offsets_do_not_block_the_commit() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, [5, 6, 9])  # 7 and 8: a transaction marker and a compacted record
    for offset in (9, 6, 5):
        tracker.done(TP, offset)
    assert tracker.to_commit() == {TP: 10}


def test_partitions_are_independent_and_forgotten_ones_ignore_late_acks() -> None:
    tracker = OffsetTracker()
    other = ("in", 1)
    tracker.track(TP, [0, 1])
    tracker.track(other, [0])
    tracker.done(other, 0)
    assert tracker.to_commit() == {other: 1}
    tracker.forget([TP])
    tracker.done(TP, 0)  # an ack arriving after the partition was released
    assert tracker.to_commit() == {other: 1}
    assert tracker.in_flight(TP) == 0


def test_any_completion_order_ends_at_the_last_offset_plus_one() -> None:
    tracker = OffsetTracker()
    offsets = list(range(1000))
    tracker.track(TP, offsets)
    shuffled = offsets[:]
    random.Random(7).shuffle(shuffled)
    positions = []
    for offset in shuffled:
        tracker.done(TP, offset)
        positions.append(tracker.to_commit().get(TP, 0))
    assert positions == sorted(positions)  # never moves backwards
    assert positions[-1] == 1000
