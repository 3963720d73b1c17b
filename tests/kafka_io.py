"""Produce and consume helpers the broker tests share (real clients, no mocks)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], **config: object
) -> list[Message]:
    """Produce `records` (key, value) and flush; returns the acknowledged messages."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    acked: list[Message] = []
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            acked.append(msg)
        else:
            errors.append(err)

    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=report)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records never acknowledged"
    assert not errors, f"delivery failed: {errors[:3]}"
    return acked


def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Message]], bool],
    timeout: float = 60.0,
    settle: float = 2.0,
    isolation: str = "read_committed",
    config: Mapping[str, Any] | None = None,
) -> list[Message]:
    """Read `topic` from the beginning with a fresh group until `until(messages so far)`, then
    keep polling `settle` seconds so that any extra message would be caught too. `config`:
    more librdkafka settings (security)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            **(config or {}),
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        while not until(got) and time.monotonic() < deadline:
            got.extend(_batch(consumer))
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            got.extend(_batch(consumer))
    finally:
        consumer.close()
    return got


def consume_exactly(
    bootstrap: str, topic: str, count: int, timeout: float = 60.0, settle: float = 2.0
) -> list[Message]:
    """Read `topic` until `count` messages arrived, and `settle` seconds more."""
    return collect(bootstrap, topic, lambda got: len(got) >= count, timeout, settle)


def distinct_keys(count: int) -> Callable[[list[Message]], bool]:
    """An `until` for `collect`: `count` distinct keys seen."""
    return lambda got: len({m.key() for m in got}) >= count


def _batch(consumer: Consumer) -> list[Message]:
    messages = consumer.consume(500, timeout=0.5)
    for msg in messages:
        err = msg.error()
        assert err is None or err.code() == KafkaError._PARTITION_EOF, err
    return [m for m in messages if m.error() is None]
