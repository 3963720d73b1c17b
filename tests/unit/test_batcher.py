from __future__ import annotations

import threading
import time

from packflow.runtime.batcher import PartitionQueues


def test_a_full_batch_is_taken_at_once_fairly_and_in_partition_order() -> None:
    queues: PartitionQueues[int, tuple[int, int]] = PartitionQueues(max_per_partition=100)
    queues.put(0, [(0, i) for i in range(10)])
    queues.put(1, [(1, i) for i in range(10)])
    began = time.monotonic()
    batch = queues.take(max_records=8, max_wait_s=5.0)
    assert time.monotonic() - began < 1.0  # did not wait for max_wait
    assert sorted(batch) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert len(queues) == 12
    rest = queues.take(max_records=100, max_wait_s=0.01)
    for p in (0, 1):
        assert [i for q, i in batch + rest if q == p] == list(range(10))


def test_a_partial_batch_waits_max_wait_from_the_oldest_arrival() -> None:
    queues: PartitionQueues[int, int] = PartitionQueues(max_per_partition=100)
    queues.put(0, [1, 2])
    time.sleep(0.15)
    began = time.monotonic()
    batch = queues.take(max_records=10, max_wait_s=0.2)
    waited = time.monotonic() - began
    assert batch == [1, 2]
    assert waited < 0.15  # most of max_wait was already spent queued


def test_records_arriving_while_waiting_join_the_batch() -> None:
    queues: PartitionQueues[int, int] = PartitionQueues(max_per_partition=100)
    queues.put(0, [1])
    threading.Timer(0.05, queues.put, args=(1, [2, 3])).start()
    assert sorted(queues.take(max_records=3, max_wait_s=2.0)) == [1, 2, 3]


def test_empty_take_returns_after_idle_and_drop_and_full() -> None:
    queues: PartitionQueues[int, int] = PartitionQueues(max_per_partition=3)
    assert queues.take(max_records=10, max_wait_s=1.0, idle_s=0.01) == []
    queues.put(0, [1, 2, 3])
    queues.put(1, [4])
    assert queues.full(0) and not queues.full(1)
    assert queues.drop([0]) == [1, 2, 3]
    assert len(queues) == 1 and queues.size(0) == 0
    queues.close()
    assert queues.take(max_records=10, max_wait_s=5.0) == [4]  # closed: no waiting


def test_take_runs_groups_each_partitions_records_in_offset_order() -> None:
    queues: PartitionQueues[str, int] = PartitionQueues(max_per_partition=100)
    queues.put("a", [1, 2, 3, 4])
    queues.put("b", [10, 11])
    runs = queues.take_runs(max_records=5, max_wait_s=1.0)
    assert sum(len(run) for _, run in runs) == 5
    for key, run in runs:
        assert run == sorted(run) and {key} == {"a" if x < 10 else "b" for x in run}
    taken = [x for _, run in runs for x in run]
    rest = queues.take(max_records=10, max_wait_s=0.01)
    assert sorted(taken + rest) == [1, 2, 3, 4, 10, 11]
    assert [x for x in taken + rest if x < 10] == [1, 2, 3, 4]  # per partition, in order
