"""Reading a topic to its end (or following it): `packflow results`, the demo and the tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.errors import TopicError


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    timeout_s: float = 30.0,
    read_committed: bool = True,
) -> Iterator[Message]:
    """Every message of `topic` from the beginning, until its end as of the call (or, with
    `follow`, until the caller stops iterating). Reads without joining a group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"packflow-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise TopicError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions or metadata.topics[topic].error is not None:
            raise TopicError(f"no topic {topic} at {bootstrap}")
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        # 0 is before the start of any partition: Kafka moves it to the earliest offset.
        deadline = time.monotonic() + timeout_s
        while follow or ends:
            messages = consumer.consume(1000, timeout=0.2)
            if not messages and not follow and time.monotonic() > deadline:
                raise TopicError(f"timed out reading {topic}: partitions {sorted(ends)} unread")
            for message in messages:
                error = message.error()
                partition = message.partition()
                if error is None:
                    yield message
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise TopicError(f"reading {topic}: {error.str()}")
                # The end: past the last message, or at the end (transaction markers included).
                end = int(message.offset() or 0) + (error is None)
                if partition in ends and end >= ends[partition]:
                    del ends[partition]
            if messages:
                deadline = time.monotonic() + timeout_s
    finally:
        consumer.close()
