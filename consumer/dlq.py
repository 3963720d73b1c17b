"""Dead letters, read back: listed, grouped by stage and error, and replayed to the input.

A dead letter holds the original key and bytes, the record's own headers (a `traceparent`,
say) and `packflow.*` headers naming the failing stage, the error and the source (see
`consumer/headers.py`). A replay produces the original key and bytes to the input topic
with the record's own headers and `packflow.replay.of` = `<dead-letter topic>/<partition>/
<offset>`, so that the replayed record can be told apart; its result is keyed as the
original's would have been, so a record replayed twice (or whose original was answered after
all) is dropped as a repeat or compacted away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from .errors import TopicError
from .headers import PREFIX, read_packflow_headers
from .results import read_topic

REPLAY_HEADER = PREFIX + "replay.of"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def info(self) -> dict[str, str]:
        """The `packflow.*` headers, prefix stripped."""
        return read_packflow_headers(self.headers)

    @classmethod
    def of(cls, m: Message) -> DeadLetter:
        """The dead letter a consumed message holds."""
        given = m.headers() or []
        raw = list(given.items()) if isinstance(given, dict) else list(given)
        headers = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw]
        return cls(
            str(m.topic()),
            int(m.partition() or 0),
            int(m.offset() or 0),
            m.key(),
            m.value(),
            headers,
        )

    @property
    def stage(self) -> str:
        return self.info.get("stage", "?")

    @property
    def error_type(self) -> str:
        return self.info.get("error.type", "?")

    @property
    def error_message(self) -> str:
        return self.info.get("error.message", "")

    @property
    def key_text(self) -> str | None:
        """The original key as text (an idempotency key from the id field, for Packflow's
        own producers), or None."""
        return None if self.key is None else self.key.decode(errors="replace")

    @property
    def where(self) -> str:
        """Its own coordinates, `topic/partition/offset`: what `show` and replays name."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def source(self) -> str:
        info = self.info
        return "/".join(info.get(f"source.{k}", "?") for k in ("topic", "partition", "offset"))


def read_dead_letters(
    bootstrap: str, topic: str, kafka: Mapping[str, Any] | None = None
) -> Iterator[DeadLetter]:
    for m in read_topic(bootstrap, topic, kafka=kafka):
        yield DeadLetter.of(m)


def select(
    letters: Iterable[DeadLetter],
    *,
    stage: str | None = None,
    error_type: str | None = None,
    keys: Iterable[str] = (),
    where: Iterable[str] = (),
) -> list[DeadLetter]:
    """The dead letters matching every filter given (keys and coordinates: any of them)."""
    wanted_keys, wanted_where = set(keys), set(where)
    return [
        d
        for d in letters
        if (stage is None or d.stage == stage)
        and (error_type is None or d.error_type == error_type)
        and (not wanted_keys or (d.key or b"").decode(errors="replace") in wanted_keys)
        and (not wanted_where or d.where in wanted_where)
    ]


@dataclass(frozen=True)
class Group:
    stage: str
    error_type: str
    count: int
    example: DeadLetter


def group(letters: Iterable[DeadLetter]) -> list[Group]:
    """Counts per (stage, error type), most first, each with its latest dead letter."""
    counts: Counter[tuple[str, str]] = Counter()
    latest: dict[tuple[str, str], DeadLetter] = {}
    for d in letters:
        counts[d.stage, d.error_type] += 1
        latest[d.stage, d.error_type] = d
    return [Group(s, e, n, latest[s, e]) for (s, e), n in counts.most_common()]


def replay(
    bootstrap: str,
    input_topic: str,
    letters: list[DeadLetter],
    kafka: Mapping[str, Any] | None = None,
) -> int:
    """Produce each dead letter's original key and bytes to `input_topic`, marked; returns
    how many were acknowledged (all of them, or it raises). `kafka`: more librdkafka
    settings (security)."""
    producer = Producer(
        {**(kafka or {}), "bootstrap.servers": bootstrap, "enable.idempotence": True}
    )
    failures: list[KafkaError] = []

    def report(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    for d in letters:
        own = [(k, v) for k, v in d.headers if not k.startswith(PREFIX)]
        producer.produce(
            input_topic,
            key=d.key,
            value=d.value,
            headers=[*own, (REPLAY_HEADER, d.where.encode())],
            on_delivery=report,
        )
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        detail = failures[0].str() if failures else f"{left} unacknowledged"
        raise TopicError(f"replay to {input_topic} failed: {detail}")
    return len(letters)
