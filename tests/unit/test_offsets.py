from __future__ import annotations

from packflow.runtime.offsets import OffsetTracker

TP = ("in", 0)
OTHER = ("in", 1)


def test_positions_move_once_per_commit_and_only_forwards() -> None:
    tracker = OffsetTracker()
    assert tracker.to_commit() == {}
    tracker.published({TP: 11})
    assert tracker.to_commit() == {TP: 11}
    tracker.committed({TP: 11})
    assert tracker.to_commit() == {}
    tracker.published({TP: 9})  # never backwards (a late mark of an older batch)
    assert tracker.to_commit() == {}
    tracker.published({TP: 14})
    assert tracker.to_commit() == {TP: 14}


def test_partitions_are_independent_and_forgotten_ones_start_over() -> None:
    tracker = OffsetTracker()
    tracker.published({TP: 2, OTHER: 1})
    tracker.committed({OTHER: 1})
    assert tracker.to_commit() == {TP: 2}
    tracker.forget([TP])
    assert tracker.to_commit() == {}
    tracker.committed({TP: 2})  # a commit that raced the release changes nothing
    assert tracker.to_commit() == {}
    tracker.published({TP: 1})  # reassigned: its new owner's position, even if lower
    assert tracker.to_commit() == {TP: 1}


def test_a_failed_commit_is_retried_with_the_latest_position() -> None:
    tracker = OffsetTracker()
    tracker.published({TP: 5, OTHER: 3})
    tracker.committed({TP: 5, OTHER: 3})
    tracker.published({TP: 8})
    tracker.retry([OTHER])  # its asynchronous commit failed
    assert tracker.to_commit() == {TP: 8, OTHER: 3}
