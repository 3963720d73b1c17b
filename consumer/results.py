"""Reading topics without joining a group: from the beginning, from a time or from their end,
to their end as of opening or following them. `packflow results`, the client (`Results`,
`predict`'s shared reader), the demo, the dead-letter tools and the tests read through it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Self

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from .errors import TopicError

# What a partition of a topic just created (or moving) answers until it has a leader.
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)

Start = Literal["beginning", "end"] | datetime
"""Where a reader starts in each partition: its first message, its end as of opening (what is
produced later is read, nothing before), or the first message at or after a time."""


def reader_config(
    bootstrap: str, *, read_committed: bool = True, kafka: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A group-less reader's librdkafka settings; `kafka` (TLS, SASL, ...) passes through."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": f"packflow-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    } | dict(kafka or {})


class TopicReader:
    """Every partition of some topics, assigned by hand at fixed starting offsets.

    Constructing it touches nothing; `open()` asks the broker for the partitions and their
    offsets and assigns them, so that what is produced after `open()` returns is never missed
    (the start is an offset, not "the end" resolved later). `poll()` returns messages (raising
    `TopicError` for a broken topic); `at_end` says whether each partition has been read to its
    end as of `open()`.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Sequence[str],
        *,
        start: Start = "beginning",
        timeout_s: float = 30.0,
    ) -> None:
        self.config = dict(config)
        self.topics = list(topics)
        self.start = start
        self.timeout_s = timeout_s
        self._consumer: Consumer | None = None
        self._ends: dict[tuple[str, int], int] = {}

    @property
    def bootstrap(self) -> str:
        return str(self.config.get("bootstrap.servers", ""))

    def open(self) -> Self:
        if self._consumer is not None:
            return self
        consumer = Consumer(self.config)
        try:
            assignment = [tp for topic in self.topics for tp in self._positions(consumer, topic)]
            consumer.assign(assignment)
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        return self

    def _positions(self, consumer: Consumer, topic: str) -> list[TopicPartition]:
        bootstrap, timeout = self.bootstrap, self.timeout_s
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise TopicError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise TopicError(f"no topic {topic} at {bootstrap}")
        deadline = time.monotonic() + timeout
        ends = {p: self._watermarks(consumer, topic, p, deadline) for p in described.partitions}
        starts = self._starts(consumer, topic, ends)
        for p, (low, high) in ends.items():
            if high > max(low, starts[p]):
                self._ends[(topic, p)] = high
        return [TopicPartition(topic, p, starts[p]) for p in ends]

    def _watermarks(
        self, consumer: Consumer, topic: str, partition: int, deadline: float
    ) -> tuple[int, int]:
        """A partition's low and high offsets; a topic just created may have no leader yet,
        so a retriable refusal is asked again until `deadline`."""
        while True:
            left = max(deadline - time.monotonic(), 0.1)
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=left
                )
                return int(low), int(high)
            except KafkaException as exc:
                error = exc.args[0]
                again = error.retriable() or error.code() in _NO_LEADER_YET
                if not again or time.monotonic() > deadline:
                    raise TopicError(
                        f"cannot read the offsets of {topic}/{partition} at {self.bootstrap}: "
                        f"{error.str()}"
                    ) from exc
                time.sleep(0.1)

    def _starts(
        self, consumer: Consumer, topic: str, ends: dict[int, tuple[int, int]]
    ) -> dict[int, int]:
        if self.start == "beginning":
            return dict.fromkeys(ends, OFFSET_BEGINNING)
        if self.start == "end":
            return {p: high for p, (_, high) in ends.items()}
        at_ms = int(self.start.timestamp() * 1000)
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, at_ms) for p in ends], timeout=self.timeout_s
        )
        # -1: no message at or after that time yet; start at the end.
        return {
            tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition][1] for tp in found
        }

    @property
    def at_end(self) -> bool:
        """Every partition read to its end as of `open()`."""
        return not self._ends

    @property
    def unread(self) -> list[str]:
        """`topic/partition` of each partition not yet read to its end as of `open()`."""
        return sorted(f"{topic}/{partition}" for topic, partition in self._ends)

    def poll(self, timeout_s: float) -> list[Message]:
        """The messages ready within `timeout_s` (returns as soon as one is): up to 1000."""
        consumer = self.open()._consumer
        assert consumer is not None
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        got = []
        for message in [first, *consumer.consume(999, timeout=0)]:
            error = message.error()
            topic, partition = str(message.topic()), int(message.partition() or 0)
            if error is None:
                got.append(message)
            elif error.fatal() or (
                message.topic() is not None and error.code() != KafkaError._PARTITION_EOF
            ):
                raise TopicError(f"reading {topic}: {error.str()}")
            elif message.topic() is None:
                # The client's own (a broker away, all brokers down): librdkafka reconnects
                # by itself, and a reader reads on once the broker is back.
                continue
            # Past the last message, or at the end (transaction markers included).
            end = int(message.offset() or 0) + (error is None)
            if self._ends.get((topic, partition), end + 1) <= end:
                del self._ends[(topic, partition)]
        return got

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()


def read_messages(reader: TopicReader, *, follow: bool = False) -> Iterator[Message]:
    """Every message `reader` reads, until the ends as of opening (or, with `follow`, until
    the caller stops iterating). Raises `TopicError` when nothing arrives for the reader's
    `timeout_s` while partitions are left unread. Closes the reader when done."""
    with reader:
        deadline = time.monotonic() + reader.timeout_s
        while follow or not reader.at_end:
            messages = reader.poll(0.2)
            if messages:
                deadline = time.monotonic() + reader.timeout_s
            elif not follow and time.monotonic() > deadline:
                raise TopicError(
                    f"timed out reading {', '.join(reader.topics)}: {reader.unread} unread"
                )
            yield from messages


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    timeout_s: float = 30.0,
    read_committed: bool = True,
    start: Start = "beginning",
    kafka: Mapping[str, Any] | None = None,
) -> Iterator[Message]:
    """Every message of `topic` from `start`, until its end as of the call (or, with
    `follow`, until the caller stops iterating). Reads without joining a group."""
    config = reader_config(bootstrap, read_committed=read_committed, kafka=kafka)
    return read_messages(
        TopicReader(config, [topic], start=start, timeout_s=timeout_s), follow=follow
    )
