"""A round trip through the real 1-node broker: produce N, consume exactly N, equal."""

from __future__ import annotations

import os

from tests.conftest import TopicFactory
from tests.kafka_io import consume_exactly, produce


def test_round_trip_exactly_n_records_keys_and_values_equal(
    kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=3)
    n = 5000
    sent = {f"key-{i}".encode(): os.urandom(1 + i % 300) for i in range(n)}
    acked = produce(kafka_bootstrap, topic, list(sent.items()), acks="all")
    assert len(acked) == n

    received = consume_exactly(kafka_bootstrap, topic, n)

    assert len(received) == n
    got = {m.key(): m.value() for m in received}
    assert got == sent
    # Within a partition, offsets come back in order with no gap.
    by_partition: dict[int, list[int]] = {}
    for m in received:
        by_partition.setdefault(m.partition(), []).append(m.offset())
    assert sorted(by_partition) == [0, 1, 2]
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
