"""`Results` and `DeadLetters`: the results topic as typed `Result`s, the dead-letter topic
as `DeadLetter`s with their headers parsed, read with isolation `read_committed` (under
exactly-once, only committed results), without joining a consumer group."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from confluent_kafka import Message

from ..codecs import decode_result
from ..dlq import DeadLetter
from ..errors import DecodeError
from ..headers import read_packflow_headers
from ..results import Start, TopicReader, read_messages, reader_config
from ..settings import ResultFormat, RuntimeSettings, load_settings

__all__ = ["DeadLetter", "DeadLetters", "Result", "Results", "Source"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a result's input was read: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Result:
    """One result: the record's key, the backend's name, version and output, the input's
    coordinates (`source`, from the `packflow.source.*` headers when the replicas write them:
    setting `result_headers`), and where the result itself lies on the results topic."""

    key: str
    backend: str
    backend_version: str
    output: Any
    source: Source | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None

    def envelope(self) -> dict[str, Any]:
        """The result as the topic holds it: `{"key", "backend", "backend_version", "output"}`."""
        return {
            "key": self.key,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "output": self.output,
        }

    @classmethod
    def of(cls, message: Message, fmt: ResultFormat) -> Result:
        """The result a results-topic message holds; raises `DecodeError` naming the
        message's coordinates for one that is not a result."""
        topic, partition, offset = str(message.topic()), message.partition(), message.offset()
        try:
            value = decode_result(message.value(), fmt)
        except DecodeError as exc:
            raise DecodeError(
                f"{topic}/{partition}/{offset} is not a {fmt} result: {exc}", reason=exc.reason
            ) from exc
        headers = message.headers()
        found = read_packflow_headers(headers) if headers else {}
        source = None
        if "source.topic" in found:
            source = Source(
                found["source.topic"],
                int(found.get("source.partition", -1)),
                int(found.get("source.offset", -1)),
            )
        kind, stamp = message.timestamp()
        return cls(
            key=str(value.get("key") or (message.key() or b"").decode(errors="replace")),
            backend=str(value.get("backend", "")),
            backend_version=str(value.get("backend_version", "")),
            output=value["output"],
            source=source,
            topic=topic,
            partition=int(partition or 0),
            offset=int(offset or 0),
            timestamp_ms=stamp if kind else None,
        )


T = TypeVar("T")


class _TopicItems(ABC, Generic[T]):
    """A topic read as items of one type, from `start`, to its end as of the first
    iteration (or, with `follow`, for as long as the caller iterates); `dedup` keeps the
    first item of each key. Each iteration reads the topic anew."""

    def __init__(
        self,
        settings: RuntimeSettings | None = None,
        *,
        topic: str | None = None,
        start: Start = "beginning",
        follow: bool = False,
        dedup: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.topic = topic or self._default_topic(self.settings)
        self.start = start
        self.follow = follow
        self.dedup = dedup
        self.timeout_s = timeout_s

    @staticmethod
    @abstractmethod
    def _default_topic(settings: RuntimeSettings) -> str: ...

    @abstractmethod
    def _item(self, message: Message) -> tuple[str | None, T]:
        """The item a message holds, and its key."""

    def messages(self) -> Iterator[Message]:
        """The topic's messages themselves, as `__iter__` would read them (without dedup)."""
        settings = self.settings
        config = reader_config(
            settings.bootstrap_servers, kafka=settings.kafka | settings.consumer_kafka
        )
        reader = TopicReader(config, [self.topic], start=self.start, timeout_s=self.timeout_s)
        return read_messages(reader, follow=self.follow)

    def __iter__(self) -> Iterator[T]:
        seen: set[str | None] = set()
        for message in self.messages():
            key, item = self._item(message)
            if self.dedup:
                if key in seen:
                    continue
                seen.add(key)
            yield item


class Results(_TopicItems[Result]):
    """The results topic's `Result`s (settings: default `load_settings()`).

    `start`: "beginning" (default), "end" (what is produced from now on) or a `datetime`
    (the first result at or after it); `follow`: keep reading new results; `dedup`: one
    result per key (the first; results of one key are alike). Raises `TopicError` when the
    topic is missing or the broker cannot be reached in `timeout_s`.
    """

    @staticmethod
    def _default_topic(settings: RuntimeSettings) -> str:
        return settings.results_topic

    def _item(self, message: Message) -> tuple[str | None, Result]:
        result = Result.of(message, self.settings.result_format)
        return result.key, result


class DeadLetters(_TopicItems[DeadLetter]):
    """The dead-letter topic's `DeadLetter`s, read as `Results` reads results: each with its
    original key and bytes, and its `packflow.*` headers parsed (`stage`, `error_type`,
    `error_message`, `info`)."""

    @staticmethod
    def _default_topic(settings: RuntimeSettings) -> str:
        return settings.dead_letter_topic

    def _item(self, message: Message) -> tuple[str | None, DeadLetter]:
        letter = DeadLetter.of(message)
        return letter.key_text, letter
