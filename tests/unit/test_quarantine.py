"""Crash-loop quarantine's bookkeeping: marks in the committed offset's metadata, and the
steps a batch is run in (consumer/quarantine.py)."""

from __future__ import annotations

from packflow.runtime.metrics import Probes
from packflow.runtime.quarantine import TIMEOUT_EXIT, Mark, Quarantine, parse_mark
from tests.unit.test_replica_parts import A, B, at_least_once, exactly_once

TP = ("in", 0)
OTHER = ("in", 1)


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def run(first: int, last: int) -> list[Msg]:
    return [Msg(o) for o in range(first, last + 1)]


def offsets(records: list[Msg]) -> list[int]:
    return [r.offset() for r in records]


def test_a_mark_round_trips_and_other_metadata_is_not_one() -> None:
    mark = Mark(12, 2, 40, by="host-1-0", exits=("exit 7",), timeout=True)
    assert parse_mark(mark.encode()) == mark
    assert parse_mark(Mark(3, 1, 9).encode()) == Mark(3, 1, 9)
    assert parse_mark(None) is None and parse_mark("") is None
    assert parse_mark("someone else's metadata") is None
    assert parse_mark('{"offset": 1, "attempt": 1, "end": 2}') is None  # not ours
    assert parse_mark('{"pf": 1, "offset": "x"}') is None
    assert Mark(1, 1, 1).reason == "crash" and mark.reason == "timeout"
    assert len(Mark(1, 1, 1, exits=tuple(f"exit {i}" for i in range(50))).encode()) < 400


def test_nothing_held_with_care_plans_nothing() -> None:
    q = Quarantine(3, "me", None)
    assert not q.active
    assert q.plan([(TP, run(0, 9))]) is None
    q.assigned({TP: (10, None, 10)})  # nothing to re-read
    assert not q.active


def test_re_read_records_run_in_marked_batches_then_new_ones_run_plain() -> None:
    q = Quarantine(3, "me", None)
    assert q.assigned({TP: (100, None, 250), OTHER: (5, "", 5)}) == {}
    assert q.active
    steps = q.plan([(TP, run(100, 199)), (OTHER, run(5, 9))])
    assert steps is not None and len(steps) == 2
    assert steps[0].run[0][0] == OTHER and not steps[0].marks  # never held records: plain
    assert offsets(steps[1].run[0][1]) == list(range(100, 200))
    assert steps[1].marks == {TP: Mark(100, 1, 199, "me")}
    steps = q.plan([(TP, run(200, 299))])  # crosses the high watermark at assignment
    assert steps is not None and steps[0].marks == {TP: Mark(200, 1, 299, "me")}
    assert not q.active and q.plan([(TP, run(300, 399))]) is None


def test_a_stale_mark_is_not_a_crash() -> None:
    q = Quarantine(3, "me", None)
    # The mark was left at 40; the offset has moved past it since.
    assert q.assigned({TP: (90, Mark(40, 2, 60).encode(), 100)}) == {}
    steps = q.plan([(TP, run(90, 99))])
    assert steps is not None and steps[0].marks == {TP: Mark(90, 1, 99, "me")}


def test_a_crash_inside_a_mark_narrows_its_range_record_by_record() -> None:
    q = Quarantine(3, "me", None)
    died = Mark(10, 1, 13, "other")
    assert q.assigned({TP: (10, died.encode(), 20)}) == {TP: died}
    assert q.narrowing() == [0]
    steps = q.plan([(TP, run(10, 11))])
    assert steps is not None
    assert [s.marks for s in steps] == [{TP: Mark(10, 2, 13, "me")}, {TP: Mark(11, 1, 13, "me")}]
    assert [offsets(s.run[0][1]) for s in steps] == [[10], [11]]
    # The rest of the range, then the re-read records after it in one marked batch.
    steps = q.plan([(TP, run(12, 16))])
    assert steps is not None
    assert [s.marks for s in steps[:2]] == [
        {TP: Mark(12, 1, 13, "me")},
        {TP: Mark(13, 1, 13, "me")},
    ]
    assert offsets(steps[2].run[0][1]) == [14, 15, 16] and not steps[2].marks
    assert q.narrowing() == []
    steps = q.plan([(TP, run(17, 19))])  # still re-read: marked
    assert steps is not None and steps[0].marks == {TP: Mark(17, 1, 19, "me")}
    assert not q.active


def test_a_record_at_max_attempts_is_quarantined_unrun_and_its_neighbours_run() -> None:
    q = Quarantine(3, "me", None)
    died = Mark(11, 3, 12, "other", exits=("exit 7", "signal 9"))
    q.assigned({TP: (11, died.encode(), 13)})
    steps = q.plan([(TP, run(11, 12))])
    assert steps is not None and steps[0].quarantine is not None
    tp, record, mark = steps[0].quarantine
    assert tp == TP and record.offset() == 11 and mark.attempt == 3
    assert mark.exits == ("exit 7", "signal 9") and not steps[0].run
    assert steps[1].marks == {TP: Mark(12, 1, 12, "me")}  # its neighbour counts from zero
    assert not q.active


def test_attempts_count_up_to_the_limit_across_owners() -> None:
    """Each owner that dies running the record leaves the next one a higher count."""
    committed = Mark(7, 1, 7, "a").encode()  # a marked batch of one record died once
    for owner, expected in (("b", 2), ("c", 3)):
        q = Quarantine(3, owner, None)
        q.assigned({TP: (7, committed, 8)})
        steps = q.plan([(TP, run(7, 7))])
        assert steps is not None
        mark = steps[0].marks[TP]
        assert mark.attempt == expected
        committed = mark.encode()  # ... and it died running it
    q = Quarantine(3, "d", None)
    q.assigned({TP: (7, committed, 8)})
    steps = q.plan([(TP, run(7, 7))])
    assert steps is not None and steps[0].quarantine is not None


def test_a_restarted_replica_adds_how_its_predecessor_ended_to_its_own_marks() -> None:
    q = Quarantine(3, "me", "exit 7")
    q.assigned(
        {TP: (4, Mark(4, 1, 4, "me").encode(), 5), OTHER: (4, Mark(4, 1, 4, "x").encode(), 5)}
    )
    steps = q.plan([(TP, run(4, 4)), (OTHER, run(4, 4))])
    assert steps is not None
    marks = {tp: m for s in steps for tp, m in s.marks.items()}
    assert marks[TP].exits == ("exit 7",) and marks[OTHER].exits == ()


def test_released_partitions_need_no_care() -> None:
    q = Quarantine(3, "me", None)
    q.assigned({TP: (0, None, 100)})
    q.released([TP])
    assert not q.active


# -- writing marks through each guarantee's checkpoint ------------------------------------------


def test_at_least_once_marks_commit_what_is_done_and_the_mark_synchronously() -> None:
    checkpoint, consumer, producer, _ = at_least_once()
    checkpoint.done([(A, 0, 9), (B, 0, 4)], [])
    mark = Mark(10, 2, 19, "me")
    assert checkpoint.mark({A: (10, mark.encode())}) is None
    assert producer.calls == ["flush"]  # what is done was acknowledged first
    assert consumer.commits == [([("in", 0, 10), ("in", 1, 5)], False)]
    assert parse_mark(consumer.metadata[A]) == mark and not consumer.metadata[B]
    # The batch passes: the next commit moves on and carries no metadata (clears the mark).
    checkpoint.done([(A, 10, 19)], [])
    checkpoint.commit(periodic=True)
    assert consumer.commits[-1] == ([("in", 0, 20)], True) and not consumer.metadata[A]


def test_at_least_once_runs_unmarked_rather_than_commit_past_an_unacknowledged_output() -> None:
    checkpoint, consumer, producer, log = at_least_once()
    checkpoint.done([(A, 0, 9)], [])
    producer.unacknowledged = 1
    assert checkpoint.mark({A: (10, Mark(10, 1, 19).encode())}) is None
    assert consumer.commits == [] and log.named("mark_deferred")


def test_exactly_once_marks_go_with_the_transactions_offsets() -> None:
    checkpoint, producer = exactly_once()
    checkpoint.begin()
    checkpoint.done([(B, 0, 4)], ["b"])
    mark = Mark(7, 1, 9, "me")
    assert checkpoint.mark({A: (7, mark.encode())}) is None
    assert producer.calls == ["begin_transaction", "commit_transaction"]
    assert producer.offsets_sent == [([("in", 0, 7), ("in", 1, 5)], "group-metadata")]
    assert parse_mark(producer.metadata[A]) == mark and not producer.metadata[B]
    # Nothing open: a mark opens and commits a transaction of its own; the next has none.
    checkpoint.mark({A: (8, Mark(8, 1, 9).encode())})
    assert producer.calls[-2:] == ["begin_transaction", "commit_transaction"]
    checkpoint.begin()
    checkpoint.done([(A, 8, 9)], ["a"])
    checkpoint.commit()
    assert not producer.metadata[A]


def test_healthz_says_why_while_an_execute_timeout_ends_the_replica() -> None:
    probes = Probes(60, partitions=lambda: 1, fatal=lambda: None)
    assert probes.healthy() == (True, "ok\n")
    probes.note = lambda: "narrowing partitions [2] after a crash"
    assert probes.healthy() == (True, "ok: narrowing partitions [2] after a crash\n")
    probes.failing = "execute timeout: a batch of partitions [2] ran 5.1s"
    ok, why = probes.healthy()
    assert not ok and "execute timeout" in why


def test_each_guarded_partition_is_marked_in_a_step_of_its_own() -> None:
    q = Quarantine(3, "me", None)
    q.assigned({TP: (0, None, 50), OTHER: (0, None, 50)})
    steps = q.plan([(TP, run(0, 9)), (OTHER, run(0, 9))])
    assert steps is not None
    assert [list(s.marks) for s in steps] == [[TP], [OTHER]]  # a death blames one partition


def test_a_partition_never_committed_has_only_its_first_batch_marked() -> None:
    q = Quarantine(3, "me", None)
    q.assigned({TP: (-1001, None, 5000)})  # a fresh group over a backlog
    steps = q.plan([(TP, run(0, 255))])
    assert steps is not None and steps[0].marks == {TP: Mark(0, 1, 255, "me")}
    assert not q.active and q.plan([(TP, run(256, 511))]) is None


def test_the_supervisor_names_how_a_replica_ended() -> None:
    from packflow.runtime.supervisor import describe_exit

    assert describe_exit(7) == "exit 7"
    assert describe_exit(-9) == "signal 9"
    assert describe_exit(TIMEOUT_EXIT) == "timeout"


def test_a_range_being_narrowed_is_handed_on_when_its_partition_goes_cleanly() -> None:
    q = Quarantine(3, "me", None)
    q.assigned({TP: (10, Mark(10, 1, 20, "x").encode(), 30), OTHER: (0, None, 5)})
    q.plan([(TP, run(10, 12))])  # 10, 11, 12 done alone
    positions = {TP: 13, OTHER: 3}
    leaving = q.leaving([TP, OTHER], positions.get)
    assert leaving == {TP: Mark(13, 0, 20, "me")}  # no attempt counted: the next owner goes on
    q2 = Quarantine(3, "next", None)
    assert q2.assigned({TP: (13, leaving[TP].encode(), 30)}) == {TP: leaving[TP]}
    steps = q2.plan([(TP, run(13, 13))])
    assert steps is not None and steps[0].marks == {TP: Mark(13, 1, 20, "next")}


def test_a_partition_taken_in_two_runs_keeps_its_offset_order() -> None:
    """A batch can hold a partition twice (the queues share a batch out among partitions, then
    give what is left to those with more). Planned run by run, the second run went first in a
    marked step of its own, and the narrowing's mark at the range's start then rewound the
    committed offset over its answers: under exactly-once, 123 results appeared twice."""
    q = Quarantine(3, "me", None)
    q.assigned({TP: (0, Mark(0, 1, 2, "other").encode(), 1000), OTHER: (0, None, 1000)})
    steps = q.plan([(TP, run(0, 4)), (OTHER, run(0, 1)), (TP, run(5, 9))])
    assert steps is not None
    order = [o for s in steps for tp, records in s.run if tp == TP for o in offsets(records)]
    assert order == list(range(10))  # every record of the partition once, in offset order
    marked = [s.marks[TP].offset for s in steps if TP in s.marks]
    assert marked == sorted(marked) == [0, 1, 2]  # each mark after the last, never back
    guarded = Quarantine(3, "me", None)
    guarded.assigned({TP: (0, None, 1000)})
    steps = guarded.plan([(TP, run(0, 4)), (TP, run(5, 9))])
    assert steps is not None and len(steps) == 1  # one marked step covering both runs
    assert steps[0].marks == {TP: Mark(0, 1, 9, "me")}
    assert offsets(steps[0].run[0][1]) == list(range(10))
