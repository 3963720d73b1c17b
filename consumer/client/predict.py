"""`Client`: request-reply over the input and results topics. `predict(records)` sends the
records and waits for each one's result, matched by key; `apredict` is its asyncio form.

One reader per client follows the results and dead-letter topics in a thread of its own, from
their ends as of `start()`, and hands each answer to the callers waiting for its key. A
caller registers its keys before its records are sent, so an answer cannot come before its
wait begins, however many replicas answer and however fast. The reader remembers the results
it has seen as long as the replicas remember keys they answered (`dedup_max_keys`,
`dedup_ttl_s`): a record whose key was answered already is dropped by the replicas as a
repeat, so its earlier result is the answer (nothing is sent).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self, overload

from cachetools import TTLCache
from confluent_kafka import KafkaError, Message

from packflow.errors import ConfigError, PackflowError

from ..dlq import DeadLetter
from ..errors import DeliveryError, EncodeError, PredictionFailed, PredictionTimeout
from ..results import Start, TopicReader, reader_config
from ..settings import RuntimeSettings, load_settings
from .producer import Producer
from .results import Result

__all__ = ["Client"]

Record = Mapping[str, Any]
Answer = Result | PredictionFailed
Future = concurrent.futures.Future[Result]


def _failure(letter: DeadLetter) -> PredictionFailed:
    return PredictionFailed(
        letter.key_text or "",
        stage=letter.stage,
        error_type=letter.error_type,
        error_message=letter.error_message,
        dead_letter=letter,
    )


def _answer(future: Future, result: Result | None, error: BaseException | None) -> None:
    """Settle `future`, unless it is settled already: an asyncio caller that timed out
    cancels its futures while the reader may be answering them."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is None:
            future.set_result(result)  # type: ignore[arg-type]
        else:
            future.set_exception(error)


def _batch(records: Record | Sequence[Record]) -> list[Record]:
    if isinstance(records, Mapping):
        return [records]
    return list(records)


class _Answers:
    """The shared reader: results and dead letters, handed to the futures waiting on their
    keys. Its thread also serves the producer's delivery reports."""

    def __init__(self, settings: RuntimeSettings, producer: Producer, start: Start) -> None:
        self.settings = settings
        self.producer = producer
        self.topics = (settings.results_topic, settings.dead_letter_topic)
        self.reader = TopicReader(
            reader_config(
                settings.bootstrap_servers, kafka=settings.kafka | settings.consumer_kafka
            ),
            self.topics,
            start=start,
        )
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Future]] = {}
        self._answered: TTLCache[str, Message] = TTLCache(
            maxsize=settings.dedup_max_keys, ttl=settings.dedup_ttl_s
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broken: BaseException | None = None

    def start(self) -> None:
        self.reader.open()  # positions fixed before any record is sent
        self._thread = threading.Thread(target=self._run, name="packflow-answers", daemon=True)
        self._thread.start()

    def expect(self, keys: Sequence[str]) -> tuple[list[Future], list[bool]]:
        """A future per key, and whether the key must be sent (False: answered already)."""
        futures, fresh = [], []
        fmt = self.settings.result_format
        with self._lock:
            if self._broken is not None:
                raise self._broken
            for key in keys:
                future: Future = concurrent.futures.Future()
                known = self._answered.get(key)
                if known is not None:
                    self._settle(future, known, fmt)
                else:
                    self._waiting.setdefault(key, []).append(future)
                futures.append(future)
                fresh.append(known is None)
        return futures, fresh

    def forget(self, keys: Sequence[str], futures: Sequence[Future]) -> None:
        with self._lock:
            for key, future in zip(keys, futures, strict=True):
                waiting = self._waiting.get(key)
                if waiting and future in waiting:
                    waiting.remove(future)
                    if not waiting:
                        del self._waiting[key]

    def fail(self, key: str | None, error: KafkaError) -> None:
        """A delivery failed: its waiters get a `DeliveryError`."""
        if key is None:
            return
        with self._lock:
            waiting = self._waiting.pop(key, [])
        failed = DeliveryError(f"record {key!r} was not delivered: {error.str()}", (error.str(),))
        for future in waiting:
            _answer(future, None, failed)

    @staticmethod
    def _settle(future: Future, message: Message, fmt: Any) -> None:
        try:
            result = Result.of(message, fmt)
        except PackflowError as exc:
            _answer(future, None, exc)
        else:
            _answer(future, result, None)

    def _run(self) -> None:
        results_topic, fmt = self.topics[0], self.settings.result_format
        try:
            while not self._stop.is_set():
                messages = self.reader.poll(0.1)
                self.producer.poll(0)
                for message in messages:
                    raw = message.key()
                    if raw is None:
                        continue
                    key = raw.decode(errors="replace")
                    with self._lock:
                        if message.topic() == results_topic:
                            self._answered[key] = message
                        waiting = self._waiting.pop(key, None)
                    if not waiting:
                        continue
                    if message.topic() == results_topic:
                        for future in waiting:
                            self._settle(future, message, fmt)
                    else:
                        failure = _failure(DeadLetter.of(message))
                        for future in waiting:
                            _answer(future, None, failure)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            with self._lock:
                self._broken = exc
                waiting_lists = list(self._waiting.values())
                self._waiting.clear()
            for waiting in waiting_lists:
                for future in waiting:
                    _answer(future, None, exc)
        finally:
            self.reader.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            waiting_lists = list(self._waiting.values())
            self._waiting.clear()
        closed = PackflowError("the client was closed before the answer came")
        for waiting in waiting_lists:
            for future in waiting:
                _answer(future, None, closed)


class Client:
    """Sends records and waits for their results: `predict()` / `apredict()`.

    Settings as for `Producer` (default `load_settings()`); records are keyed by the id field
    (`id_field`), which every predicted record must have. `lookback_s` starts the shared
    reader that long before `start()`, so that results answered before this client existed
    (and that the replicas would drop a repeat of) are found too. Constructing it touches
    nothing; `start()`, the first `predict`, or entering it as a context manager connects.
    Thread-safe: one client serves many callers (threads, or tasks of one event loop).
    """

    def __init__(self, settings: RuntimeSettings | None = None, *, lookback_s: float = 0.0):
        self.settings = settings if settings is not None else load_settings()
        if self.settings.id_field is None:
            raise ConfigError(
                [("id_field", "predict matches results to records by the id field: set one")],
                subject="Packflow client",
            )
        self.lookback_s = lookback_s
        self.producer = Producer(self.settings, on_failure=self._failed)
        self._answers: _Answers | None = None
        self._lock = threading.Lock()

    def start(self) -> Self:
        with self._lock:
            if self._answers is None:
                start: Start = "end"
                if self.lookback_s > 0:
                    start = datetime.now(UTC) - timedelta(seconds=self.lookback_s)
                answers = _Answers(self.settings, self.producer.start(), start)
                answers.start()
                self._answers = answers
        return self

    def _failed(self, key: str | None, error: KafkaError) -> None:
        if self._answers is not None:
            self._answers.fail(key, error)

    def _submit(self, records: Sequence[Record]) -> tuple[list[str], list[Future], _Answers]:
        answers = self.start()._answers
        assert answers is not None
        encoded = [self.producer.encode(record) for record in records]
        keys = []
        for record, (key, _) in zip(records, encoded, strict=True):
            if key is None:
                field = self.settings.id_field
                raise EncodeError(
                    f"record has no id field {field!r}, by which predict finds its result: "
                    f"{sorted(record)}"
                )
            keys.append(key)
        futures, fresh = answers.expect(keys)
        try:
            self.producer.send_encoded(e for e, new in zip(encoded, fresh, strict=True) if new)
        except BaseException:
            answers.forget(keys, futures)
            raise
        return keys, futures, answers

    @staticmethod
    def _collect(
        keys: list[str],
        futures: Sequence[concurrent.futures.Future[Result] | asyncio.Future[Result]],
        raise_failures: bool,
    ) -> list[Answer]:
        answers: list[Answer] = []
        for future in futures:
            error = future.exception()
            if error is None:
                answers.append(future.result())
            elif isinstance(error, PredictionFailed) and not raise_failures:
                answers.append(error)
            else:
                raise error
        return answers

    @overload
    def predict(
        self, records: Record, timeout_s: float = ..., *, raise_failures: bool = ...
    ) -> Result: ...

    @overload
    def predict(
        self, records: Sequence[Record], timeout_s: float = ..., *, raise_failures: bool = ...
    ) -> list[Answer]: ...

    def predict(
        self,
        records: Record | Sequence[Record],
        timeout_s: float = 30.0,
        *,
        raise_failures: bool = True,
    ) -> Result | list[Answer]:
        """Send the records and wait for their results, at most `timeout_s` in all.

        One record gives its `Result`; a list gives a list in the same order. A record that
        became a dead letter raises `PredictionFailed` (stage, error type and message), or
        with `raise_failures=False` takes its place in the list. `PredictionTimeout` names the
        keys without an answer when `timeout_s` runs out; `EncodeError` (nothing sent) names
        the field of a record that does not fit the schema."""
        one = isinstance(records, Mapping)
        batch = _batch(records)
        if not batch:
            return []
        keys, futures, answers = self._submit(batch)
        _, not_done = concurrent.futures.wait(futures, timeout=timeout_s)
        if not_done:
            answers.forget(keys, futures)
            pending = tuple(k for k, f in zip(keys, futures, strict=True) if f in not_done)
            raise PredictionTimeout(pending, timeout_s)
        got = self._collect(keys, futures, raise_failures)
        return got[0] if one else got  # type: ignore[return-value]

    @overload
    async def apredict(
        self, records: Record, timeout_s: float = ..., *, raise_failures: bool = ...
    ) -> Result: ...

    @overload
    async def apredict(
        self, records: Sequence[Record], timeout_s: float = ..., *, raise_failures: bool = ...
    ) -> list[Answer]: ...

    async def apredict(
        self,
        records: Record | Sequence[Record],
        timeout_s: float = 30.0,
        *,
        raise_failures: bool = True,
    ) -> Result | list[Answer]:
        """`predict()` for asyncio: the wait does not block the event loop. (Sending can
        wait briefly, in the caller, while the producer's local queue is full; start the
        client first, `async with Client() as client:`, so that connecting does not.)"""
        one = isinstance(records, Mapping)
        batch = _batch(records)
        if not batch:
            return []
        keys, futures, answers = self._submit(batch)
        waited = [asyncio.wrap_future(f) for f in futures]
        _, not_done = await asyncio.wait(waited, timeout=timeout_s)
        if not_done:
            answers.forget(keys, futures)
            for future in not_done:
                future.cancel()
            pending = tuple(k for k, f in zip(keys, waited, strict=True) if f in not_done)
            raise PredictionTimeout(pending, timeout_s)
        got = self._collect(keys, waited, raise_failures)
        return got[0] if one else got  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the reader (waiters still waiting get an error) and flush the producer."""
        with self._lock:
            answers, self._answers = self._answers, None
        if answers is not None:
            answers.close()
        self.producer.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        """`async with Client() as client:` starts it without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self.close)
