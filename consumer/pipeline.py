"""The data path of one micro-batch, top to bottom, with no Kafka I/O:

    decode -> idempotency keys -> drop repeats -> backend (validated per row) -> encode

Every input message leaves as exactly one of: a result to publish, a dead letter, or a repeat
(its key was already answered). A stage that fails for the whole batch is retried record by
record, so one bad record never fails its neighbours.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, overload

from consumer.codecs import Decoder, ResultEncoder
from consumer.dedup import AnsweredKeys
from consumer.errors import DecodeError, EncodeError
from consumer.headers import Stage
from consumer.keys import record_keys
from packflow import InferenceBackend
from packflow.errors import BackendError, ValidationError


class Record(Protocol):
    """What the pipeline needs of a consumed message (confluent_kafka.Message has it)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def headers(self) -> Any: ...


M = TypeVar("M", bound=Record)


@dataclass(frozen=True, slots=True)
class Failure:
    stage: Stage
    error_type: str
    message: str


@dataclass
class Outcome(Generic[M]):
    """Where each message of a batch went; each list keeps batch (so offset) order."""

    results: list[tuple[M, str, bytes]] = field(default_factory=list)
    dead: list[tuple[M, Failure]] = field(default_factory=list)
    repeats: list[M] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Coordinates(Sequence[tuple[str, int, int]]):
    """topic, partition, offset of each message, computed only where a key needs them."""

    def __init__(self, batch: Sequence[Record]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch)

    @overload
    def __getitem__(self, i: int) -> tuple[str, int, int]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[str, int, int]]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        m = self.batch[i]
        return str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)


def failure_of(exc: Exception) -> Failure:
    """Name the stage and the root error type of a pipeline exception."""
    if isinstance(exc, ValidationError):
        return Failure("validate", "ValidationError", str(exc))
    if isinstance(exc, DecodeError):
        return Failure("decode", "DecodeError", str(exc))
    if isinstance(exc, EncodeError):
        return Failure("encode", "EncodeError", str(exc))
    stage: Stage = "preprocess" if getattr(exc, "stage", None) == "preprocess" else "backend"
    cause = exc.__cause__ if isinstance(exc, BackendError) and exc.__cause__ else exc
    return Failure(stage, type(cause).__name__, str(exc))


class Pipeline:
    def __init__(
        self,
        backend: InferenceBackend,
        decoder: Decoder,
        encoder: ResultEncoder,
        answered: AnsweredKeys,
        id_field: str | None,
    ) -> None:
        self.backend = backend
        self.decoder = decoder
        self.encoder = encoder
        self.answered = answered
        self.id_field = id_field

    def __call__(self, batch: Sequence[M]) -> Outcome[M]:
        outcome: Outcome[M] = Outcome()
        started = time.perf_counter()
        decoded = self.decoder.decode_batch([m.value() for m in batch])
        records = [None if isinstance(d, DecodeError) else d for d in decoded]
        keys = record_keys(records, _Coordinates(batch), self.id_field)
        decoded_at = time.perf_counter()

        live = [i for i, r in enumerate(records) if r is not None]
        todo: list[int] = []
        for i, fresh in zip(live, self.answered.claim([keys[i] for i in live]), strict=True):
            if fresh:
                todo.append(i)
            else:
                outcome.repeats.append(batch[i])

        inferred = self._infer([records[i] for i in todo])
        inferred_at = time.perf_counter()
        encoded = self._answers([keys[i] for i in todo], inferred)

        if len(todo) == len(batch) and not any(isinstance(e, Failure) for e in encoded):
            # The common batch: every record decoded, new, and answered.
            outcome.results = list(zip(batch, keys, encoded, strict=True))  # type: ignore[arg-type]
        else:
            self._sort(batch, decoded, keys, dict(zip(todo, encoded, strict=True)), outcome)
        outcome.seconds = {
            "decode": decoded_at - started,
            "backend": inferred_at - decoded_at,
            "encode": time.perf_counter() - inferred_at,
        }
        return outcome

    def _sort(
        self,
        batch: Sequence[M],
        decoded: list[Any],
        keys: list[str],
        answers: dict[int, bytes | Failure],
        outcome: Outcome[M],
    ) -> None:
        """Each message that is not a repeat into the results or the dead letters."""
        released = []
        for i, message in enumerate(batch):
            error = decoded[i]
            if isinstance(error, DecodeError):
                outcome.dead.append((message, failure_of(error)))
            elif i in answers:
                answer = answers[i]
                if isinstance(answer, Failure):
                    outcome.dead.append((message, answer))
                    released.append(keys[i])
                else:
                    outcome.results.append((message, keys[i], answer))
        # A key that got no answer may be answered by a later copy of its record.
        self.answered.release(released)

    def _answers(self, keys: list[str], inferred: list[Any]) -> list[bytes | Failure]:
        """The encoded result of each output, or the Failure it already was or became."""
        ok = [j for j, answer in enumerate(inferred) if not isinstance(answer, Failure)]
        if len(ok) == len(inferred):
            return self._encode(keys, inferred)
        answers: list[bytes | Failure] = list(inferred)
        encoded = self._encode([keys[j] for j in ok], [inferred[j] for j in ok])
        for j, answer in zip(ok, encoded, strict=True):
            answers[j] = answer
        return answers

    def _infer(self, records: list[Any]) -> list[Any]:
        """One answer per record: its output, or a `Failure`."""
        if not records:
            return []
        try:
            result = self.backend.run_batch(records)
        except (BackendError, ValidationError) as exc:
            if len(records) == 1:
                return [failure_of(exc)]
            # No row can be blamed for a batch-wide failure: find the bad ones one by one.
            return [self._infer([record])[0] for record in records]
        answers: list[Any] = list(result.outputs)
        for failed in result.failures:
            if failed.row is not None:
                answers[failed.row] = failure_of(failed)
        return answers

    def _encode(self, keys: list[str], outputs: list[Any]) -> list[bytes | Failure]:
        name, version = self.backend.name, str(self.backend.version)
        try:
            return list(self.encoder.encode_batch(keys, outputs, name, version))
        except EncodeError:
            answers: list[bytes | Failure] = []
            for key, output in zip(keys, outputs, strict=True):
                try:
                    answers.extend(self.encoder.encode_batch([key], [output], name, version))
                except EncodeError as exc:
                    answers.append(failure_of(exc))
            return answers
