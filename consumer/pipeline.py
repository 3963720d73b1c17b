"""The data path of one micro-batch, top to bottom, with no Kafka I/O:

    decode -> idempotency keys -> drop repeats -> backend (validated per row) -> encode

Every input message leaves as exactly one of: a result to publish, a dead letter, or a repeat
(its key was already answered). A backend call that raises is retried with backoff
(consumer/retries.py, waiting through the `wait` the replica supplies); a batch that still
fails is split and retried record by record, so one bad record never fails its neighbours.

A call is `complete(prepare(batch))`. `prepare` holds the host-side work (decode, keys,
repeats, the backend's host stages); `complete` the rest (the backend's execute and
transform_outputs, validation, encoding). With `--overlap` the replica runs them on two
threads, one batch apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, overload

from packflow import InferenceBackend, PreparedBatch
from packflow.errors import BackendError, ValidationError

from .codecs import Decoder, ResultEncoder
from .dedup import AnsweredKeys
from .errors import DecodeError, EncodeError
from .headers import Stage
from .keys import record_keys
from .retries import RetryPolicy


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
    attempts: int = 1  # the calls made for the record, retries included
    # More `packflow.*` headers of its dead letter (a crash's attempts and exits).
    details: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome(Generic[M]):
    """Where each message of a batch went; each list keeps batch (so offset) order."""

    results: list[tuple[M, str, bytes]] = field(default_factory=list)
    dead: list[tuple[M, Failure]] = field(default_factory=list)
    repeats: list[M] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # The backend's own stage timings (its last call), when the batch reached it.
    backend_seconds: dict[str, float] = field(default_factory=dict)
    started_ns: int = 0  # wall clock, when the batch began (trace spans start there)


@dataclass
class Staged(Generic[M]):
    """A batch after `Pipeline.prepare`: what `complete` needs to finish it."""

    batch: Sequence[M]
    decoded: list[Any]
    keys: list[str]
    todo: list[int]  # indexes of the records to infer: decoded, and not repeats
    repeats: list[M]
    records: list[Any]  # the records at `todo`
    # The backend's host stages' output, or the batch-wide error they raised.
    prepared: PreparedBatch | BackendError | ValidationError | None
    seconds: dict[str, float]
    started_ns: int


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


def failure_of(exc: Exception, attempts: int = 1) -> Failure:
    """Name the stage and the root error type of a pipeline exception."""
    if isinstance(exc, ValidationError):
        return Failure("validate", "ValidationError", str(exc), attempts)
    if isinstance(exc, DecodeError):
        return Failure("decode", "DecodeError", str(exc))
    if isinstance(exc, EncodeError):
        return Failure("encode", "EncodeError", str(exc))
    stage: Stage = "preprocess" if getattr(exc, "stage", None) == "preprocess" else "backend"
    cause = exc.__cause__ if isinstance(exc, BackendError) and exc.__cause__ else exc
    return Failure(stage, type(cause).__name__, str(exc), attempts)


class Pipeline:
    def __init__(
        self,
        backend: InferenceBackend,
        decoder: Decoder,
        encoder: ResultEncoder,
        answered: AnsweredKeys,
        id_field: str | None,
        retry: RetryPolicy | None = None,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend
        self.retry = retry or RetryPolicy()
        # Sleeps before a retry; the replica's releases its commit gate meanwhile, and may
        # raise RetryInterrupted to give the batch up.
        self.wait = wait
        self.decoder = decoder
        self.encoder = encoder
        self.answered = answered
        self.id_field = id_field

    def __call__(self, batch: Sequence[M]) -> Outcome[M]:
        return self.complete(self.prepare(batch))

    def prepare(self, batch: Sequence[M]) -> Staged[M]:
        """Decode, key, drop repeats (claiming the keys of the rest), and run the backend's
        host stages."""
        started, started_ns = time.perf_counter(), time.time_ns()
        decoded = self.decoder.decode_batch([m.value() for m in batch])
        undecoded = [i for i, d in enumerate(decoded) if isinstance(d, DecodeError)]
        records: list[Any] = decoded
        if undecoded:
            records = list(decoded)
            for i in undecoded:
                records[i] = None
        keys = record_keys(records, _Coordinates(batch), self.id_field)
        decoded_at = time.perf_counter()

        live: Sequence[int]
        if undecoded:
            live = [i for i, r in enumerate(records) if r is not None]
            fresh = self.answered.claim([keys[i] for i in live])
        else:
            live, fresh = range(len(records)), self.answered.claim(keys)
        todo: list[int]
        repeats = []
        if not undecoded and all(fresh):  # the common batch: every record decoded and new
            todo = list(live)
        else:
            todo = []
            for i, new in zip(live, fresh, strict=True):
                if new:
                    todo.append(i)
                else:
                    repeats.append(batch[i])
        chosen: list[Any] = records if len(todo) == len(records) else [records[i] for i in todo]
        prepared: PreparedBatch | BackendError | ValidationError | None = None
        if chosen:
            try:
                prepared = self.backend.prepare(chosen)
            except (BackendError, ValidationError) as exc:
                prepared = exc  # `complete` finds the bad records one by one
        seconds = {"decode": decoded_at - started, "backend": time.perf_counter() - decoded_at}
        return Staged(batch, decoded, keys, todo, repeats, chosen, prepared, seconds, started_ns)

    def abandon(self, staged: Staged[M]) -> None:
        """Give up a prepared batch (its partitions went elsewhere): release its claims, so
        that the records are answered when they come again."""
        self.answered.release([staged.keys[i] for i in staged.todo])

    def complete(self, staged: Staged[M]) -> Outcome[M]:
        """Run the rest of the backend, encode, and sort every message into the outcome."""
        batch, keys, todo = staged.batch, staged.keys, staged.todo
        outcome: Outcome[M] = Outcome(repeats=staged.repeats, started_ns=staged.started_ns)
        started = time.perf_counter()
        inferred, clean = self._infer(staged.records, staged.prepared)
        inferred_at = time.perf_counter()
        everyone = len(todo) == len(batch)
        encoded, clean = self._answers(
            keys if everyone else [keys[i] for i in todo], inferred, clean
        )

        if everyone and clean:
            # The common batch: every record decoded, new, and answered.
            outcome.results = list(zip(batch, keys, encoded, strict=True))  # type: ignore[arg-type]
        else:
            self._sort(batch, staged.decoded, keys, dict(zip(todo, encoded, strict=True)), outcome)
        if staged.records:
            outcome.backend_seconds = self.backend.profiler.last
        outcome.seconds = {
            "decode": staged.seconds["decode"],
            "backend": staged.seconds["backend"] + inferred_at - started,
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

    def _answers(
        self, keys: list[str], inferred: list[Any], clean: bool
    ) -> tuple[list[bytes | Failure], bool]:
        """The encoded result of each output, or the Failure it already was or became; and
        whether none is a Failure. `clean`: no output is a Failure already."""
        if clean:
            return self._encode(keys, inferred)
        ok = [j for j, answer in enumerate(inferred) if not isinstance(answer, Failure)]
        answers: list[bytes | Failure] = list(inferred)
        encoded, _ = self._encode([keys[j] for j in ok], [inferred[j] for j in ok])
        for j, answer in zip(ok, encoded, strict=True):
            answers[j] = answer
        return answers, False

    def _infer(
        self,
        records: list[Any],
        prepared: PreparedBatch | BackendError | ValidationError | None = None,
    ) -> tuple[list[Any], bool]:
        """One answer per record: its output, or a `Failure`; and whether none is a Failure.
        `prepared`: the records through the backend's host stages already (or the error
        those raised). A call that raises is retried (with backoff) while the policy allows,
        then split."""
        if not records:
            return [], True
        retry = self.retry
        calls = 1
        while True:
            try:
                if isinstance(prepared, Exception):
                    raise prepared
                if prepared is None:
                    prepared = self.backend.prepare(records)
                result = self.backend.complete(prepared)
                break
            except (BackendError, ValidationError) as exc:
                prepared = None
                if calls <= retry.attempts and retry.retriable(exc):
                    self.wait(retry.delay(calls))
                    calls += 1
                    continue
                if len(records) == 1:
                    return [failure_of(exc, calls)], False
                # No row can be blamed for a batch-wide failure: find the bad ones one by one.
                answers = [self._infer([record])[0][0] for record in records]
                return answers, not any(isinstance(a, Failure) for a in answers)
        if not result.failures:
            return list(result.outputs), True
        answers = list(result.outputs)
        for failed in result.failures:
            if failed.row is not None:
                answers[failed.row] = failure_of(failed, calls)
        return answers, not any(isinstance(a, Failure) for a in answers)

    def _encode(self, keys: list[str], outputs: list[Any]) -> tuple[list[bytes | Failure], bool]:
        """Each output's encoded result, or its Failure; and whether all were encoded."""
        name, version = self.backend.name, str(self.backend.version)
        try:
            return list(self.encoder.encode_batch(keys, outputs, name, version)), True
        except EncodeError:
            answers: list[bytes | Failure] = []
            for key, output in zip(keys, outputs, strict=True):
                try:
                    answers.extend(self.encoder.encode_batch([key], [output], name, version))
                except EncodeError as exc:
                    answers.append(failure_of(exc))
            return answers, False
