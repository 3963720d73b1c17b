"""`Producer`: records to the input topic as the pipeline reads them.

Each record is encoded with the settings' codec and input schema (schemaless, single-object,
or Confluent with the schema registered under `<input topic>-value`) and keyed by its id field
(the key the replicas give its result). The producer is idempotent (`acks=all`); a full local
queue is waited out rather than raised (`BufferError`); a record that does not fit the schema
raises `EncodeError` naming the field before anything of its call is sent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

import confluent_kafka
from confluent_kafka import KafkaError, Message

from ..codecs import Encoder, make_encoder
from ..errors import DeliveryError
from ..publisher import send
from ..settings import RuntimeSettings, load_settings, producer_config

__all__ = ["Producer", "record_key"]

_UNSET: Any = object()

DeliveryFailed = Callable[[str | None, KafkaError], None]
"""Told each failed delivery: the record's key (None for a keyless one) and librdkafka's
reason. Runs in whichever thread polls the producer."""


def record_key(record: Mapping[str, Any], key_field: str | None) -> str | None:
    """A record's message key: its id field's value as text, as the replicas key its result
    (`consumer/keys.py`); None without an id field (the result is then keyed by the record's
    topic/partition/offset)."""
    value = record.get(key_field) if key_field else None
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class Producer:
    """Sends records to the input topic (`topic`, default the settings' `input_topic`).

    Settings are `RuntimeSettings` (default: `load_settings()`: `PACKFLOW_*` variables and
    `packflow.yaml`); librdkafka's `kafka` and `producer_kafka` pass through. Constructing it
    touches neither the network nor the registry: `start()` (or the first `send`) does.
    Thread-safe. Use it as a context manager, or call `flush()` and `close()`.
    """

    def __init__(
        self,
        settings: RuntimeSettings | None = None,
        *,
        topic: str | None = None,
        key_field: str | None = _UNSET,
        on_failure: DeliveryFailed | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.topic = topic or self.settings.input_topic
        self.key_field: str | None = self.settings.id_field if key_field is _UNSET else key_field
        self.on_failure = on_failure
        self._encoder: Encoder | None = None
        self._producer: confluent_kafka.Producer | None = None
        self._lock = threading.Lock()  # encoders reuse one buffer; start() runs once
        self._failures: list[KafkaError] = []

    def start(self) -> Self:
        if self._producer is not None:
            return self
        with self._lock:
            if self._producer is None:
                # The replicas' producer settings, without their transactional id.
                config = producer_config(self.settings)
                config.pop("transactional.id", None)
                self._producer = confluent_kafka.Producer(config | {"on_delivery": self._delivered})
        return self

    def _writer(self) -> Encoder:
        if self._encoder is None:
            settings = self.settings
            # Written as the replicas expect: schemaless datums with the writer schema they
            # are told of, if one; the other codecs name their writer themselves.
            writer = settings.input_schema
            if settings.codec == "schemaless" and settings.writer_schema:
                writer = settings.writer_schema
            self._encoder = make_encoder(
                settings.codec,
                writer,
                registry_url=settings.registry_url,
                registry_config=settings.registry_config,
                subject=f"{settings.input_topic}-value",
            )
        return self._encoder

    def encode(self, record: Mapping[str, Any]) -> tuple[str | None, bytes]:
        """`record`'s key and message value; raises `EncodeError` naming the field that does
        not fit the schema. (Only the confluent codec asks the network: its registry, once.)"""
        with self._lock:
            value = self._writer().encode(record)
        return record_key(record, self.key_field), value

    def send(self, record: Mapping[str, Any]) -> str | None:
        """Encode and send one record; returns its key. Delivery is asynchronous: `flush()`
        waits for it and raises `DeliveryError` for what failed."""
        key, value = self.encode(record)
        self.send_encoded([(key, value)])
        return key

    def send_many(self, records: Iterable[Mapping[str, Any]]) -> list[str | None]:
        """Encode every record, then send them all: a record that does not fit the schema
        raises before any of them is sent. Returns their keys, in order."""
        encoded = [self.encode(record) for record in records]
        self.send_encoded(encoded)
        return [key for key, _ in encoded]

    def send_encoded(self, encoded: Iterable[tuple[str | None, bytes]]) -> None:
        """Send (key, value) pairs from `encode()`, waiting while the local queue is full."""
        producer = self.start()._producer
        assert producer is not None
        topic = self.topic
        for i, (key, value) in enumerate(encoded, 1):
            send(producer, topic, None if key is None else key.encode(), value)
            if i % 1000 == 0:
                producer.poll(0)
        producer.poll(0)  # delivery reports of earlier sends

    @property
    def failed(self) -> int:
        """Deliveries that failed since the last `flush()`."""
        return len(self._failures)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports (sending and flushing do too)."""
        if self._producer is not None:
            self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every record sent is acknowledged; raises `DeliveryError` if any
        delivery failed or `timeout_s` ran out."""
        if self._producer is None:
            return
        left = self._producer.flush(timeout_s)
        failures, self._failures = self._failures, []
        if failures or left:
            reasons = tuple(error.str() for error in failures[:5])
            reason = (
                f"{len(failures)} deliveries failed: {reasons[0]}"
                if failures
                else f"{left} records unacknowledged after {timeout_s:g} s"
            )
            raise DeliveryError(f"producing to {self.topic} failed: {reason}", reasons)

    def close(self, timeout_s: float = 60.0) -> None:
        """Flush, then let the producer go (raises as `flush()` does)."""
        try:
            self.flush(timeout_s)
        finally:
            self._producer = None

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        self._failures.append(error)
        if self.on_failure is not None:
            key = message.key()
            self.on_failure(None if key is None else key.decode(errors="replace"), error)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            # Already failing: deliver what was sent, but raise the first error, not ours.
            with contextlib.suppress(DeliveryError):
                self.close()
