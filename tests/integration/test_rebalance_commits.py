"""Commits made inside a rebalance callback, against the real broker: the replica's revoke
callback commits what it finished (and a hung batch's timed-out mark) through `commit_sync`,
which must commit on the callback's own thread there; one made from another thread is
answered only after the callback returns, so a callback waiting on it never returns."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from packflow.runtime.checkpoint import commit_sync, rebalance_callback
from tests.conftest import TopicFactory

MARK = '{"pf":1,"offset":5,"attempt":1,"end":9,"timeout":true}'


def test_a_commit_in_the_revoke_callback_lands_before_the_partition_moves(
    kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):
        producer.produce(topic, str(i).encode(), partition=i % 2)
    producer.flush(10)
    config = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"revoke-commit-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    outcomes: list[tuple[str, list[int]]] = []
    closing = False

    def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if closing:
            return  # close() revokes the rest: nothing to commit there
        offsets = [TopicPartition(p.topic, p.partition, 5, metadata=MARK) for p in partitions]
        with rebalance_callback():
            try:
                commit_sync(consumer, offsets, wait_s=20)
                outcomes.append(("committed", [p.partition for p in partitions]))
            except Exception as exc:  # noqa: BLE001  # the outcome is what is asserted
                outcomes.append((str(exc), [p.partition for p in partitions]))

    first, second = Consumer(config), Consumer(config)
    try:
        first.subscribe([topic], on_revoke=on_revoke)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(first.assignment()) < 2:
            first.poll(0.1)
        assert len(first.assignment()) == 2
        second.subscribe([topic])  # the group rebalances: one partition moves to it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (outcomes and second.assignment()):
            first.poll(0.1)
            second.poll(0.1)
        assert len(outcomes) == 1, outcomes
        outcome, moved = outcomes[0]
        assert outcome == "committed" and len(moved) == 1
        [committed] = second.committed([TopicPartition(topic, moved[0])], timeout=10)
        assert (committed.offset, committed.metadata) == (5, MARK)  # the new owner reads it
    finally:
        closing = True
        first.close()
        second.close()
