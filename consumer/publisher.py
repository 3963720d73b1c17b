"""Producing a batch's outcome: results under their idempotency keys, dead letters with their
original key, bytes and the headers that say why, and what a failed delivery means.

An output the producer refuses for good when it is produced (larger than `message.max.bytes`,
an invalid record, an unknown topic) is not retried: a refused result becomes a dead letter
with stage `publish`, and a refused dead letter is sent again with a truncated copy of its
input (consumer/headers.py). The producer's limits are fitted to the topics' own
`max.message.bytes` (`fit_to_topics`), so that an oversize record is refused in produce()
rather than later; other refusals reported later, in a delivery report (a delivery
timeout), are failed deliveries.

Results carry the input's trace context (and, with `result_headers`, the backend and the
source coordinates); with OpenTelemetry recording, a traced record's result and dead letter
carry its `packflow process` span's context instead (consumer/tracing.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from packflow.errors import PackflowError

from .headers import (
    TRACE_HEADERS,
    TRUNCATED_BYTES,
    Headers,
    ResultHeaders,
    dead_letter_headers,
    trace_headers,
    truncated_headers,
)
from .pipeline import Failure, Outcome
from .tracing import Tracing
from .transactions import NOT_AUTHORIZED, FencedError

__all__ = ["NotAuthorized", "PublishRejected", "Publisher", "fit_to_topics", "send"]

_LIBRDKAFKA_DEFAULT_MAX = 1_000_000  # message.max.bytes and batch.size
# Room for what the broker counts and librdkafka's own check does not: the record batch's
# header and each record's framing.
_FRAMING_MARGIN = 1024

# Refusals of the record itself, raised by produce(): trying again cannot succeed.
_REFUSED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)


# What an aborted transaction's records report: nothing is lost, they are read again.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})

# produce() on a producer that met a fatal error, or whose transaction can no longer take
# records (refused on the fetch side meanwhile: "Erroneous state")
_UNUSABLE = (KafkaError._FATAL, KafkaError._STATE)


class NotAuthorized(PackflowError):
    """The broker refuses this replica's principal the right to write to `topic`."""

    def __init__(self, topic: str, error: KafkaError) -> None:
        super().__init__(
            f"not authorized to Write to topic {topic} ({error.str()}): grant the replica's "
            "principal Write and Describe on it (`packflow acls`)"
        )
        self.topic = topic
        self.error = error


class PublishRejected(PackflowError):
    """The producer refused a record for good (`error`: librdkafka's reason)."""

    def __init__(self, topic: str, error: KafkaError) -> None:
        super().__init__(f"{topic}: {error.str()}")
        self.topic = topic
        self.error = error


def send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
) -> None:
    """`producer.produce()`, waiting while librdkafka's local queue is full (its BufferError)
    rather than failing: the one such loop in Packflow. Raises `PublishRejected` when the
    record can never be produced, `FencedError` when the producer itself is unusable (a
    fatal error: fenced, or its transaction refused)."""
    while True:
        try:
            # list[tuple[str, bytes]] is accepted
            producer.produce(topic, value=value, key=key, headers=headers)  # type: ignore[arg-type]
            return
        except BufferError:
            producer.poll(0.05)  # let librdkafka drain its queue
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _REFUSED:
                raise PublishRejected(topic, error) from None
            if isinstance(error, KafkaError) and error.code() in NOT_AUTHORIZED:
                raise NotAuthorized(topic, error) from None
            if isinstance(error, KafkaError) and error.txn_requires_abort():
                return  # the open transaction can only abort now: its records are read again
            if isinstance(error, KafkaError) and (error.fatal() or error.code() in _UNUSABLE):
                # Not this record's fault: the producer failed (the fetch side usually met the
                # cause first, in a commit). The replica stops, nothing of it committed.
                raise FencedError(f"producer: {error.str()}") from None
            raise


def fit_to_topics(config: dict[str, Any], limit: int | None) -> tuple[dict[str, Any], int | None]:
    """Producer settings that let librdkafka refuse, in produce(), what the topics' own limit
    (`max.message.bytes`, lower than the producer's) would refuse only in a delivery report:
    a refusal then is a dead letter with stage `publish`, not a failed delivery. Returns the
    settings and the limit now applied (None when nothing changed)."""
    if limit is None:
        return config, None
    fitted = max(1000, limit - _FRAMING_MARGIN)
    lower = {
        key: fitted
        for key in ("message.max.bytes", "batch.size")
        if int(config.get(key, _LIBRDKAFKA_DEFAULT_MAX)) > fitted
    }
    return (config | lower, fitted) if lower else (config, None)


def _where(message: Message) -> tuple[str, int, int]:
    """topic, partition, offset of a consumed message (never None for one without error)."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


class Publisher:
    """Produces outcomes; `delivered` is the producer's delivery callback (failures only)."""

    def __init__(
        self,
        producer: Producer,
        *,
        results_topic: str,
        dead_letter_topic: str,
        backend: str,
        backend_version: str,
        result_headers: bool,
        tracing: Tracing,
        on_failure: Callable[[], bool],
        fail: Callable[[str], None],
        log: Any,
        rejected: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.producer = producer
        self.results_topic = results_topic
        self.dead_letter_topic = dead_letter_topic
        self.backend = backend
        self.backend_version = backend_version
        self.result_headers = ResultHeaders(backend, backend_version) if result_headers else None
        self.tracing = tracing
        self.on_failure = on_failure
        self.fail = fail
        self.log = log
        self.rejected = rejected  # told "result" or "dead_letter" per refused record
        self.undelivered = 0  # results whose delivery failed: never counted as answered
        self.unauthorized: set[str] = set()  # topics already said to refuse us

    def publish(self, outcome: Outcome[Message]) -> list[str]:
        """Produce the outcome; returns the keys of results refused for good (the outcome
        now has them as dead letters with stage `publish`)."""
        refused = self._results(outcome)
        if refused:
            self._refused(outcome, refused)
        self._dead_letters(outcome)
        return [key for _, key, _ in refused]

    def _results(self, outcome: Outcome[Message]) -> list[tuple[Message, str, KafkaError]]:
        producer, topic, headers_of = self.producer, self.results_topic, self.result_headers
        refused: list[tuple[Message, str, KafkaError]] = []
        # Three loops rather than one with branches: this is the hot path (a `try` that
        # raises nothing costs nothing).
        if self.tracing.recording:
            for message, key, value in outcome.results:
                original = message.headers()
                headers = (
                    headers_of(original, *_where(message))
                    if headers_of is not None
                    else trace_headers(original)
                )
                try:
                    send(
                        producer,
                        topic,
                        key.encode(),
                        value,
                        self._traced(message, headers, outcome),
                    )
                except PublishRejected as exc:
                    refused.append((message, key, exc.error))
        elif headers_of is not None:
            for message, key, value in outcome.results:
                headers = headers_of(message.headers(), *_where(message))
                try:
                    send(producer, topic, key.encode(), value, headers)
                except PublishRejected as exc:
                    refused.append((message, key, exc.error))
        else:
            produce = producer.produce
            for message, key, value in outcome.results:
                original = message.headers()  # None unless the input has headers
                headers = trace_headers(original) if original else None
                try:
                    # produce() itself, the str key encoded by the client: `send`'s frame and
                    # a key.encode() per record cost more than the rest of this loop.
                    produce(topic, value, key, headers=headers)  # type: ignore[arg-type]
                except (BufferError, KafkaException):
                    try:
                        send(producer, topic, key.encode(), value, headers)
                    except PublishRejected as exc:
                        refused.append((message, key, exc.error))
        return refused

    def _refused(
        self, outcome: Outcome[Message], refused: list[tuple[Message, str, KafkaError]]
    ) -> None:
        """Move refused results to the outcome's dead letters, with stage `publish`."""
        gone = {id(message) for message, _, _ in refused}
        outcome.results = [r for r in outcome.results if id(r[0]) not in gone]
        for message, _, error in refused:
            outcome.dead.append((message, Failure("publish", error.name(), error.str())))
            self.rejected("result")

    def _dead_letters(self, outcome: Outcome[Message]) -> None:
        for message, failure in outcome.dead:
            topic, partition, offset = _where(message)
            headers: Headers | None = dead_letter_headers(
                message.headers(),
                stage=failure.stage,
                error_type=failure.error_type,
                message=failure.message,
                topic=topic,
                partition=partition,
                offset=offset,
                backend=self.backend,
                backend_version=self.backend_version,
                attempts=failure.attempts,
                details=failure.details,
            )
            if self.tracing.recording:
                headers = self._traced(message, headers, outcome) or []
            value = message.value()
            try:
                send(self.producer, self.dead_letter_topic, message.key(), value, headers)
            except PublishRejected as exc:
                if value is None or len(value) <= TRUNCATED_BYTES:
                    raise  # not the input's size: the dead-letter topic itself is unusable
                self.rejected("dead_letter")
                self.log.warning("dead_letter_truncated", size=len(value), error=exc.error.str())
                cut = truncated_headers(headers or [], value)
                send(
                    self.producer,
                    self.dead_letter_topic,
                    message.key(),
                    value[:TRUNCATED_BYTES],
                    cut,
                )
            self.log.warning(
                "dead_letter",
                stage=failure.stage,
                error_type=failure.error_type,
                attempts=failure.attempts,
                partition=partition,
                offset=offset,
            )

    def _traced(
        self, message: Message, headers: Headers | None, outcome: Outcome[Message]
    ) -> Headers | None:
        """`headers` with the record's trace context replaced by its `packflow process`
        span's; untraced records' headers are left as they are."""
        kept = trace_headers(message.headers())
        if not kept or headers is None:
            return headers
        child = self.tracing.child(kept, _where(message), outcome.started_ns)
        return [h for h in headers if h[0] not in TRACE_HEADERS] + child

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        # A result's key is its input's idempotency key; a dead letter's, the input's own.
        topic = message.topic() or ""
        if topic == self.results_topic:
            self.undelivered += 1
        if error.code() in NOT_AUTHORIZED:
            self.not_authorized(NotAuthorized(topic, error))
            return
        if error.code() in _PURGED:
            return  # an aborted transaction's: its records are read again
        where = {"topic": topic, "key": (message.key() or b"").decode(errors="replace")}
        if self.on_failure():
            self.log.error("delivery_failed", error=error.str(), **where)
            self.fail(f"producer: {error.str()}")
        else:
            self.log.warning("delivery_failed", error=error.str(), **where)

    def not_authorized(self, refusal: NotAuthorized) -> None:
        """Stop the replica, uncommitted, with one line per topic refused (not one per
        record, nor a worker bug's traceback): only an operator's grant can help."""
        self.on_failure()  # committing past what was refused would lose it
        if refusal.topic not in self.unauthorized:
            self.unauthorized.add(refusal.topic)
            self.log.error(
                "not_authorized",
                topics=[refusal.topic],
                operation="Write",
                error=refusal.error.str(),
                consequence="the replica stops; nothing it did not publish is committed",
            )
        self.fail(str(refusal))
