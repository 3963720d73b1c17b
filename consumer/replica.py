"""One consumer replica: the data path of a group member, wired from parts that each do one job.

    poll -> per-partition queues (Assignment, Backpressure) -> micro-batch -> Pipeline
      -> Publisher (results, dead letters) -> Checkpoint (offsets, or the transaction)

The fetch thread owns the Kafka consumer: it polls (so a slow model never trips
`max.poll.interval.ms`), queues records per partition, pauses partitions whose queues stay
full, commits between batches, and handles rebalances. The worker thread takes micro-batches,
runs the pipeline and publishes. With `overlap`, a third thread takes and prepares the next
batch (decode, the backend's host stages) while the worker completes the current one. The
guarantee lives in the `Checkpoint` (consumer/checkpoint.py); nothing here depends on it.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from packflow import InferenceBackend
from packflow.loaders import InferenceBackendLoader, load_backend
from packflow.logging import get_logger
from packflow.profiling import Profiler

from .assignment import Assignment, Taken, by_partition, first_and_last, per_partition
from .backpressure import Backpressure
from .batcher import PartitionQueues
from .broker_reach import BrokerReach
from .checkpoint import (
    FLUSH_WAIT_S,
    Aborted,
    BatchGate,
    Checkpoint,
    FencedError,
    commit_sync,
    open_checkpoint,
    rebalance_callback,
)
from .codecs import make_decoder, make_result_encoder, registry_client, where_named
from .dedup import AnsweredKeys
from .errors import RegistryError
from .kafka_logs import kafka_logger
from .metrics import Probes, ReplicaMetrics, serve
from .pipeline import Failure, Outcome, Pipeline, Staged
from .publisher import NotAuthorized, Publisher, fit_to_topics
from .quarantine import TIMEOUT_EXIT, Mark, Quarantine, Step
from .registry_wait import RegistryWait
from .retries import RetryInterrupted, RetryPolicy
from .settings import (
    RuntimeSettings,
    SettingsError,
    client_settings_checked,
    consumer_config,
    producer_config,
    replica_instance,
)
from .topics import message_limit
from .tracing import Tracing
from .transactions import TransactionRefused

TP = tuple[str, int]
# With overlap: a taken batch, and the same batch prepared (None when empty).
Ahead = tuple[Taken[Message], Staged[Message] | None]
_FETCH_MAX = 1000
# Consumer errors that are a right refused, and what it is refused on.
_READ_REFUSED = {
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
}
_WATCHDOG_SLACK_S = 0.05  # a lock wait timed to the watchdog's deadline may end this early


def load_backend_for(settings: RuntimeSettings) -> InferenceBackend:
    """The backend the settings name (its `initialize()` runs here, once per replica)."""
    project = settings.project_dir()
    if settings.backend:
        return load_backend(settings.backend, base_dir=project, **settings.backend_config)
    if project is None:
        raise SettingsError(
            "no backend: give --backend module:Class (or file.py:Class), or run in a project "
            "directory holding a packflow.yaml (or give --project)"
        )
    return InferenceBackendLoader.from_project(project, **settings.backend_config)


class RunState:
    """Whether a replica keeps running: no stop asked for, and no fatal error (the first
    reason given is kept)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.fatal: str | None = None

    def stop(self) -> None:
        self._stop.set()

    def fail(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason

    @property
    def running(self) -> bool:
        return not self._stop.is_set() and self.fatal is None


def settle_heap(max_batch_size: int) -> None:
    """Before the first batch: what start-up made (modules, the backend and its model) is put
    out of the cyclic collector's reach (`gc.freeze`), and a collection waits until ten
    batches' worth of new objects are alive at once. With CPython's defaults every batch (a
    dict per record decoded, another per output) set off collections that walked the start-up
    heap again: ~1 us per record, 8% of a replica's CPU. The data path makes trees, not
    cycles, so little garbage waits for the collector, and the threshold bounds it."""
    gc.freeze()
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, 10 * max_batch_size), second, third)


class Replica:
    """Constructing one touches no network; `run()` loads the backend, opens the clients and
    runs the data path until `stop()` or a fatal error."""

    def __init__(
        self,
        settings: RuntimeSettings,
        index: int = 0,
        owner_pid: int | None = None,
        previous_exit: str | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.previous_exit = previous_exit
        self.instance = replica_instance(settings, index, owner_pid or os.getpid())
        self.log = get_logger(replica=index, pid=os.getpid())
        self.state = RunState()
        self.assignment: Assignment[Message] = Assignment(
            PartitionQueues(settings.max_queued_per_partition)
        )
        self.metrics = ReplicaMetrics()
        # Both read the replica's own state: partitions held, a fatal error.
        self.metrics.assigned.set_function(lambda: len(self.assignment))
        self.probes = Probes(
            settings.stuck_after_s,
            partitions=lambda: len(self.assignment),
            fatal=lambda: self.state.fatal,
        )

    def stop(self) -> None:
        """Ask the replica to shut down gracefully (safe from a signal handler)."""
        self.state.stop()

    def run(self) -> int:
        """Run until stopped; returns the exit code (0 after a graceful shutdown)."""
        bind_log_context(self.index)
        server = self._serve_metrics()
        try:
            data_path = self._wire()
            settle_heap(self.settings.max_batch_size)
            return data_path.run()
        finally:
            if server is not None:
                server.shutdown()

    def _serve_metrics(self) -> Any:
        settings = self.settings
        if settings.metrics_port is None:
            return None
        port = settings.metrics_port + self.index if settings.metrics_port else 0
        server = serve(self.metrics, self.probes, settings.metrics_host, port)
        self.log.info("metrics_serving", host=settings.metrics_host, port=server.server_port)
        return server

    def _wire(self) -> DataPath:
        settings = self.settings
        backend = load_backend_for(settings)
        self.probes.initialised = True
        name, version = backend.name, str(backend.version)
        log = self.log = self.log.bind(backend=name, backend_version=version)
        answered = AnsweredKeys(settings.dedup_max_keys, settings.dedup_ttl_s)
        pipeline = Pipeline(
            backend,
            make_decoder(
                settings.codec,
                settings.input_schema,
                writer_schema=settings.writer_schema,
                known_schemas=settings.known_schemas,
                registry_url=settings.registry_url,
                registry_config=settings.registry_config,
            ),
            make_result_encoder(settings.result_format),
            answered,
            settings.id_field,
            RetryPolicy(
                settings.retry_attempts,
                settings.retry_backoff_ms / 1000,
                settings.retry_backoff_max_ms / 1000,
                frozenset(settings.retry_permanent_errors),
            ),
        )
        # The clients' callbacks reach parts made after them (they run only from poll/flush).
        checkpoint: Checkpoint
        publisher: Publisher
        # Delivery reports only for failures: success is learnt from a flush before each
        # commit (at-least-once) or from the transaction's commit (exactly-once).
        with client_settings_checked():
            producer_settings, limited = fit_to_topics(
                producer_config(settings, self.instance),
                message_limit(
                    settings.bootstrap_servers,
                    [settings.results_topic, settings.dead_letter_topic],
                    settings.kafka,
                ),
            )
            if limited is not None:
                log.info(
                    "producer_limited", message_max_bytes=limited, why="topic max.message.bytes"
                )
            # One line for brokers that are away, not librdkafka's every failed connect.
            reach = BrokerReach(
                settings.bootstrap_servers,
                log,
                lambda: consumer.list_topics(settings.input_topic, timeout=1.0),
            )
            self.probes.unreachable = reach.reason
            producer = Producer(
                producer_settings
                | {
                    "on_delivery": lambda error, message: publisher.delivered(error, message),
                    "logger": kafka_logger("producer", reach.failed),
                    "error_cb": reach.kafka_error,
                }
            )
            consumer = Consumer(
                consumer_config(settings, self.index)
                | {
                    "on_commit": lambda error, partitions: checkpoint.on_commit(error, partitions),
                    # The client id names the replica in `packflow status` and the broker's logs.
                    "client.id": f"packflow-{self.instance}",
                    "logger": kafka_logger("consumer", reach.failed),
                    "error_cb": reach.kafka_error,
                }
            )
        checkpoint = open_checkpoint(settings, consumer, producer, log)
        publisher = Publisher(
            producer,
            results_topic=settings.results_topic,
            dead_letter_topic=settings.dead_letter_topic,
            backend=name,
            backend_version=version,
            result_headers=settings.result_headers,
            tracing=Tracing.start(name),
            on_failure=checkpoint.delivery_failed,
            fail=self.state.fail,
            log=log,
            rejected=lambda kind: self.metrics.publish_rejected.labels(kind).inc(),
        )
        quarantine = Quarantine(settings.max_crash_attempts, self.instance, self.previous_exit)
        self.probes.note = lambda: (
            f"narrowing partitions {parts} after a crash"
            if (parts := quarantine.narrowing())
            else None
        )
        registry_wait = RegistryWait(
            RetryPolicy(
                0, settings.registry_backoff_ms / 1000, settings.registry_backoff_max_ms / 1000
            )
        )
        self.probes.waiting = registry_wait.reason
        backpressure = Backpressure(
            consumer,
            self.assignment.queues.size,
            settings.max_queued_per_partition,
            held_until=registry_wait.until,
        )
        path = DataPath(
            settings=settings,
            index=self.index,
            log=log,
            state=self.state,
            metrics=self.metrics,
            probes=self.probes,
            consumer=consumer,
            producer=producer,
            pipeline=pipeline,
            assignment=self.assignment,
            backpressure=backpressure,
            checkpoint=checkpoint,
            publisher=publisher,
            answered=answered,
            quarantine=quarantine,
            registry_wait=registry_wait,
            reach=reach,
        )
        pipeline.wait = path.backoff
        return path


def bind_log_context(index: int) -> None:
    # Every event of the calling thread carries the replica, the backend's own included.
    structlog.contextvars.bind_contextvars(replica=index, pid=os.getpid())


@dataclass(eq=False)
class DataPath:
    """A replica at work: the fetch loop, the worker, the rebalance callbacks, shutdown."""

    settings: RuntimeSettings
    index: int
    log: Any
    state: RunState
    metrics: ReplicaMetrics
    probes: Probes
    consumer: Consumer
    producer: Producer
    pipeline: Pipeline
    assignment: Assignment[Message]
    backpressure: Backpressure
    checkpoint: Checkpoint
    publisher: Publisher
    answered: AnsweredKeys
    quarantine: Quarantine
    registry_wait: RegistryWait
    reach: BrokerReach
    gate: BatchGate = field(default_factory=BatchGate)
    counts: Counter[str] = field(default_factory=Counter)
    # decode/backend/encode wall time per batch; the backend profiles its own stages.
    profiler: Profiler = field(default_factory=Profiler)
    _worker_stop: threading.Event = field(default_factory=threading.Event)
    _lost_in_rebalance: set[int] = field(default_factory=set)
    _shutdown_by: float | None = None  # set once shutting down: no wait goes past it
    _waited: bool = False  # the running batch released the gate for a backoff
    # Crash marks the worker waits for the fetch side to commit (consumer/quarantine.py).
    _marks_wanted: dict[TP, Mark] | None = None
    _marks_done: threading.Event = field(default_factory=threading.Event)
    # (since, marks, partitions) of the pipeline call running, for the execution watchdog;
    # and since when the overlap thread prepares a batch.
    _executing: tuple[float, Mapping[TP, Mark], list[int]] | None = None
    _timed_out: set[TP] = field(default_factory=set)  # marks already written as timed out
    _preparing: float | None = None

    def run(self) -> int:
        settings = self.settings
        self.consumer.subscribe(
            [settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        worker = threading.Thread(target=self._work, name="inference")
        worker.start()
        self.log.info(
            "replica_started",
            group=settings.group_id,
            topic=settings.input_topic,
            guarantee=settings.guarantee,
        )
        if settings.codec == "confluent" and settings.registry_url:
            threading.Thread(target=self._probe_registry, name="registry", daemon=True).start()
        try:
            self._fetch_loop()
        finally:
            self._shutdown(worker)
        return 0 if self.state.fatal is None else 1

    # -- the fetch side ------------------------------------------------------------------------

    def _fetch_loop(self) -> None:
        consumer, producer, assignment = self.consumer, self.producer, self.assignment
        while self.state.running:
            self.probes.loop_turned = time.monotonic()
            self.reach.tick()
            assignment.seek_rewound(consumer, self.log)
            if self.backpressure.fetch_now(assignment.held()):
                # consume(n, timeout) waits for n records or the timeout: at a moderate rate
                # that would hold every record up to the timeout. Wait for the first one only,
                # then take what else is there.
                first = consumer.poll(0.05)
                if first is not None:
                    self._accept([first, *consumer.consume(_FETCH_MAX - 1, timeout=0)])
            else:
                time.sleep(0.002)  # the worker drains; librdkafka prefetches up to its bound
            try:
                producer.poll(0)
            except KafkaException as exc:
                # A fatal producer error (fenced), found here before a commit met it: the
                # same stop as a commit's, one line and no traceback.
                error = exc.args[0]
                reason = error.str() if isinstance(error, KafkaError) else str(error)
                self._unusable(FencedError(f"producer: {reason}"))
            # Without blocking: the loop keeps polling while a long batch runs.
            with self.gate.turn() as between:
                if between:
                    marks = self._marks_wanted
                    held = set(self.assignment.held()) if marks else set()
                    mine = {tp: m for tp, m in (marks or {}).items() if tp in held}
                    self._settle(None, True, periodic=True, marks=mine)
                    if marks is not None:
                        self._marks_wanted = None
                        self._marks_done.set()
                    self._measure_lag()
            if self.settings.execute_timeout_s is not None:
                self._watch_execution(self.settings.execute_timeout_s)

    def _accept(self, messages: list[Message]) -> None:
        runs, errors = by_partition(messages)
        for error in errors:
            self._consumer_error(error)
        queued = self.assignment.accept(runs)
        self.counts["records_in"] += queued
        self.metrics.records_in.inc(queued)

    def _consumer_error(self, error: KafkaError) -> None:
        refused = _READ_REFUSED.get(error.code())
        if refused is not None:  # a right missing: only an operator's grant can help
            if self.state.fatal is None:
                settings = self.settings
                where = settings.group_id if refused == "group" else settings.input_topic
                self.log.error(
                    "not_authorized",
                    **{refused: where},
                    operation="Read",
                    error=error.str(),
                    consequence="the replica stops; it has committed nothing it did not publish",
                )
                self.state.fail(f"not authorized to Read {refused} {where} ({error.str()})")
            return
        if error.fatal():
            self.state.fail(f"consumer: {error.str()}")
            self.log.error("consumer_fatal", error=error.str())
        else:
            self.log.warning("consumer_error", error=error.str(), code=error.name())

    def _measure_lag(self) -> None:
        """Per assigned partition: records between what is done and the partition's end."""
        consumer = self.consumer
        try:
            positions = consumer.position([TopicPartition(*tp) for tp in self.assignment.held()])
        except KafkaException:
            return
        for p in positions:
            if p.offset < 0:
                continue  # nothing fetched yet
            _, high = consumer.get_watermark_offsets(p, cached=True)
            if high >= 0:
                queued = self.assignment.queues.size((p.topic, p.partition))
                lag = max(0, high - p.offset) + queued
                self.metrics.lag.labels(p.topic, str(p.partition)).set(lag)

    # -- the inference side --------------------------------------------------------------------

    def _work(self) -> None:
        bind_log_context(self.index)
        ahead: queue.Queue[Ahead] | None = None
        preparer = None
        if self.settings.overlap:
            ahead = queue.Queue(maxsize=1)
            preparer = threading.Thread(
                target=self._prepare_ahead, args=(ahead,), name="prepare", daemon=True
            )
            preparer.start()
        try:
            while not self._worker_stop.is_set():
                if self.gate.asked:
                    time.sleep(0.002)  # the fetch side is committing: keep out of its way
                    continue
                taken, staged = (self._take(), None) if ahead is None else _next(ahead)
                careful = self.quarantine.active  # False on the all-good path
                steps = self.quarantine.plan(self.assignment.owned(taken)) if careful else None
                if steps is not None:
                    if staged is not None:
                        self.pipeline.abandon(staged)
                    self._careful(taken, steps)
                    self.gate.ask()  # commit soon: that clears the marks
                    continue
                with self.gate.batch():
                    self._complete(taken, staged)
                # The fetch side commits: librdkafka's send_offsets_to_transaction waits for a
                # rebalance in progress, which only the polling thread can finish.
                if self.checkpoint.due(idle=not taken.runs):
                    self.gate.ask()
        except NotAuthorized as exc:  # no right to write: the publisher said so, once
            self.publisher.not_authorized(exc)
        except FencedError as exc:  # the producer failed under a batch: stop, once
            if self.state.fatal is None:  # else the fetch side said why already
                self._unusable(exc)
        except Exception as exc:  # a bug, not bad data: stop the replica without committing it
            self.state.fail(f"inference worker: {type(exc).__name__}: {exc}")
            self.log.exception("worker_failed")
        finally:
            self._worker_stop.set()
            if preparer is not None:
                preparer.join()

    def _take(self) -> Taken[Message]:
        settings = self.settings
        return self.assignment.take(settings.max_batch_size, settings.max_wait_ms / 1000)

    def _prepare_ahead(self, ahead: queue.Queue[Ahead]) -> None:
        """(overlap) Take and prepare batches, one ahead of the worker."""
        bind_log_context(self.index)
        try:
            while not self._worker_stop.is_set():
                taken = self._take()
                messages = [m for _, run in taken.runs for m in run]
                # A partition that needs care is prepared by the worker, after its mark.
                staged = None
                if messages and not self.quarantine.active:
                    self._preparing = time.monotonic()
                    try:
                        staged = self.pipeline.prepare(messages)
                    except RegistryError:
                        staged = None  # the worker prepares it again, and waits if it must
                    self._preparing = None
                prepared = (taken, staged)
                while not self._worker_stop.is_set():
                    try:
                        ahead.put(prepared, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # a bug, not bad data: stop the replica
            self.state.fail(f"prepare: {type(exc).__name__}: {exc}")
            self.log.exception("prepare_failed")

    def _complete(
        self,
        taken: Taken[Message],
        staged: Staged[Message] | None,
        marks: Mapping[TP, Mark] | None = None,
    ) -> None:
        """(holding the gate) Run and publish the runs of partitions still held since they
        were taken, then tell the checkpoint. A revoke releases a partition, then waits for
        the gate, so no batch works on it afterwards; a retry's backoff lets the gate go, so
        what a revoke or an abort took meanwhile is dropped before publishing."""
        owned = self.assignment.owned(taken)
        if staged is not None and len(owned) < len(taken.runs):
            # Prepared with records no longer ours: prepare the rest again.
            self.pipeline.abandon(staged)
            staged = None
        if not owned:
            return
        self._executing = (time.monotonic(), marks or {}, [p for (_, p), _ in owned])
        try:
            if staged is None:
                try:
                    staged = self.pipeline.prepare([m for _, run in owned for m in run])
                except RegistryError as exc:
                    self._registry_away(taken, owned, exc)
                    return
            self._waited = False
            try:
                outcome = self.pipeline.complete(staged)
            except RetryInterrupted:  # stopping: its records are read again
                self.pipeline.abandon(staged)
                self.log.info("batch_given_up", records=len(staged.batch), reason="stopping")
                return
            except RegistryError as exc:  # the results' own schema could not be registered
                self.pipeline.abandon(staged)
                self._wait_for_registry(owned, exc)
                return
        finally:
            self._executing = None
        if self.registry_wait.active:
            self._registry_back(owned)
        if self._waited:
            still = self.assignment.owned(taken)
            if len(still) < len(owned):
                self._drop_lost(outcome, {tp for tp, _ in still})
                owned = still
                if not owned:
                    return
        read = first_and_last(owned)  # runs keep offset order
        # Begun here, not before the pipeline: a backoff may have let the fetch side commit.
        self.checkpoint.begin()
        refused = self.publisher.publish(outcome)
        if refused:  # dead letters now: a later copy of the record may be answered
            self.answered.release(refused)
        self._count(outcome)
        self.checkpoint.done(read, [key for _, key, _ in outcome.results])

    def backoff(self, seconds: float) -> None:
        """(worker, in a batch) Wait before a retry with the gate released, asking for the
        commits that fall due meanwhile; raises RetryInterrupted when the replica stops."""
        self.counts["retries"] += 1
        self.metrics.retries.inc()
        self._waited = True
        until = time.monotonic() + seconds
        # The execution watchdog times the calls, not the waits between them.
        executing, self._executing = self._executing, None
        try:
            with self.gate.released():
                while (left := until - time.monotonic()) > 0:
                    if self.checkpoint.due(idle=False):
                        self.gate.ask()
                    if self._worker_stop.wait(min(left, 0.05)):
                        raise RetryInterrupted
        finally:
            if executing is not None:
                self._executing = (time.monotonic(), *executing[1:])

    def _drop_lost(self, outcome: Outcome[Message], kept: set[TP]) -> None:
        """Drop what a batch answered for partitions lost during its backoff (their next
        owner, or a rewind, reads them again), forgetting its keys."""

        def ours(message: Message) -> bool:
            return (message.topic(), message.partition()) in kept

        self.answered.release([key for m, key, _ in outcome.results if not ours(m)])
        outcome.results = [r for r in outcome.results if ours(r[0])]
        outcome.dead = [d for d in outcome.dead if ours(d[0])]
        outcome.repeats = [m for m in outcome.repeats if ours(m)]
        self.log.info("batch_narrowed", reason="partitions lost during a retry backoff")

    # -- a Schema Registry that is away (consumer/registry_wait.py) ---------------------------

    def _probe_registry(self) -> None:
        """(at start, in a thread of its own) One line if the registry cannot be asked: the
        replica runs on, and records that need a schema not fetched yet wait for it."""
        url = self.settings.registry_url
        assert url is not None
        try:
            registry_client(url, self.settings.registry_config).get_subjects()
        except Exception as exc:  # noqa: BLE001  # refused, timed out, TLS, auth: all one line
            where = where_named(url)
            self.log.warning(
                "registry_unreachable",
                registry=where,
                error=f"{type(exc).__name__}: {str(exc).replace(url, where)}",
                consequence="records whose schema is not fetched yet wait for the registry",
            )

    def _registry_away(
        self, taken: Taken[Message], owned: list[tuple[TP, list[Message]]], exc: RegistryError
    ) -> None:
        """(holding the gate) Records of this batch need a schema the registry cannot give
        now: the partitions they came from wait; the other partitions' records go on."""
        runs = per_partition(owned)
        if len(runs) == 1:
            self._wait_for_registry(runs, exc)
            return
        waiting = []
        for tp, run in runs:
            try:
                staged = self.pipeline.prepare(run)
            except RegistryError as error:
                waiting.append((tp, run))
                exc = error
                continue
            self._complete(Taken([(tp, run)], {tp: taken.generations[tp]}), staged)
        if waiting:
            self._wait_for_registry(waiting, exc)

    def _wait_for_registry(self, runs: list[tuple[TP, list[Message]]], exc: RegistryError) -> None:
        """Read these partitions again from their runs' first records, after a backoff that
        the fetch side keeps them paused for: nothing of them is answered (or committed)
        past a record that still needs the registry."""
        first: dict[TP, int] = {}
        for tp, run in runs:
            first.setdefault(tp, run[0].offset() or 0)
        self.assignment.rewind(first)
        new, delay = self.registry_wait.away(list(first), str(exc))
        self.metrics.registry_waits.inc()
        # One line when partitions begin to wait; the tries after it are quieter.
        log = self.log.warning if new else self.log.debug
        log(
            "registry_unavailable" if new else "registry_still_unavailable",
            partitions=sorted(p for _, p in first),
            retry_in_s=round(delay, 2),
            error=str(exc),
        )

    def _registry_back(self, owned: list[tuple[TP, list[Message]]]) -> None:
        back = self.registry_wait.back([tp for tp, _ in owned])
        if back:
            self.log.info(
                "registry_back",
                partitions=sorted(p for _, p in back),
                waited_s=round(max(back.values()), 1),
            )

    # -- crash-loop quarantine and the execution watchdog (consumer/quarantine.py) -------------

    def _careful(self, taken: Taken[Message], steps: list[Step]) -> None:
        """Run a batch holding partitions that need care, step by step: each after its marks
        are committed; a record quarantined is dead-lettered unrun."""
        for step in steps:
            if step.marks and not self._write_marks(step.marks):
                return  # stopping: the records are read again
            part = Taken(step.run, {tp: taken.generations[tp] for tp, _ in step.run})
            with self.gate.batch():
                if step.quarantine is not None:
                    self._quarantine(taken, *step.quarantine)
                else:
                    self._complete(part, None, step.marks)

    def _write_marks(self, marks: dict[TP, Mark]) -> bool:
        """Have the fetch side commit these marks (with what is done); False if stopping."""
        self._marks_done.clear()
        self._marks_wanted = marks
        self.gate.ask()
        while not self._marks_done.wait(0.05):
            if self._worker_stop.is_set():
                return False
            # Asked again: a turn that began before the marks were wanted ends the request.
            self.gate.ask()
        return True

    def _quarantine(self, taken: Taken[Message], tp: TP, record: Message, mark: Mark) -> None:
        """(holding the gate) Dead-letter a record that ended its replica too often."""
        if not self.assignment.owned(Taken([(tp, [record])], {tp: taken.generations[tp]})):
            return
        offset = record.offset() or 0
        exits = ",".join(mark.exits) or "unknown"
        failure = Failure(
            mark.reason,
            "ExecuteTimeout" if mark.timeout else "ReplicaCrashed",
            f"the replica process ended {mark.attempt} times processing this record "
            f"(max_crash_attempts={self.quarantine.max_attempts}; exits: {exits})",
            attempts=mark.attempt,
            details=(("crash.attempts", str(mark.attempt)), ("crash.exits", exits)),
        )
        outcome: Outcome[Message] = Outcome(dead=[(record, failure)])
        self.checkpoint.begin()
        self.publisher.publish(outcome)
        self._count(outcome)
        self.checkpoint.done([(tp, offset, offset)], [])
        self.metrics.quarantined.labels(mark.reason).inc()
        self.log.error(
            "record_quarantined",
            partition=tp[1],
            offset=offset,
            reason=mark.reason,
            attempts=mark.attempt,
            exits=exits,
        )

    def _suspect(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """(on assignment) Read the gained partitions' committed offsets and marks: those
        whose previous owner died inside a marked batch are narrowed, the rest guarded."""
        tps = [(p.topic, p.partition) for p in partitions]
        found: dict[TP, tuple[int, str | None, int]] = {tp: (-1, None, -1) for tp in tps}
        try:
            for c in consumer.committed([TopicPartition(*tp) for tp in tps], timeout=10):
                # The end bounds a guard from a commit; a partition never committed needs
                # none, and a group's first start saves a request per partition.
                high = consumer.get_watermark_offsets(c, timeout=5)[1] if c.offset >= 0 else -1
                found[(c.topic, c.partition)] = (c.offset, c.metadata, high)
        except KafkaException as exc:  # unknown: guard them (a crash is found one later)
            self.log.warning("committed_unknown", error=str(exc.args[0]))
        for (_, partition), mark in self.quarantine.assigned(found).items():
            self.metrics.crash_suspected.inc()
            self.log.warning(
                "crash_suspected",
                partition=partition,
                offset=mark.offset,
                end=mark.end,
                attempts=mark.attempt,
                reason=mark.reason,
                exits=list(mark.exits),
            )

    def _watch_execution(self, timeout_s: float) -> None:
        """(fetch side) End the replica when a pipeline call runs past `timeout_s`: mark the
        attempt a timeout, leave the group at once (its partitions move without waiting for
        the session timeout) and exit with `TIMEOUT_EXIT`. The batch is read again."""
        executing, preparing, now = self._executing, self._preparing, time.monotonic()
        if executing is not None and now - executing[0] > timeout_s:
            since, marks, partitions = executing
        elif preparing is not None and now - preparing > timeout_s:
            since, marks, partitions = preparing, {}, []
        else:
            return
        why = (
            f"execute timeout: a batch of partitions {partitions} ran {now - since:.1f}s, "
            f"past execute_timeout_s={timeout_s:g}; the replica ends"
        )
        self.probes.failing = why
        self.metrics.execute_timeouts.inc()
        self.log.error("execute_timeout", partitions=partitions, running_s=round(now - since, 1))
        # Polled while it commits: a rebalance under way (a replica rejoining) answers the
        # commit only once it is through, and its revoke callback marks what it takes.
        self._mark_timed_out(marks, None, serve=lambda: self.consumer.poll(0.05))
        self._shutdown_by = time.monotonic()  # the revoke callback waits for nothing
        self._worker_stop.set()
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            self.log.warning("close_failed", error=str(exc))
        self.log.info("replica_stopped", fatal=why, exitcode=TIMEOUT_EXIT)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(TIMEOUT_EXIT)  # the worker is stuck in the backend: no teardown

    def _hung(self, executing: tuple[float, Mapping[TP, Mark], list[int]]) -> bool:
        """Whether this pipeline call is still running, past `execute_timeout_s`."""
        timeout_s = self.settings.execute_timeout_s
        return (
            timeout_s is not None
            and self._executing is executing
            and time.monotonic() - executing[0] >= timeout_s - _WATCHDOG_SLACK_S
        )

    def _mark_timed_out(
        self,
        marks: Mapping[TP, Mark],
        held: Collection[TP] | None,
        serve: Callable[[], object] | None = None,
    ) -> None:
        """Commit the hung batch's marks as ended by the watchdog, once each, for partitions in
        `held` only (None: those the replica holds as each is committed): one given up since
        may have a new owner, whose own mark this would overwrite. `serve`: see commit_sync."""
        for tp, mark in marks.items():
            still = self.assignment.held() if held is None else held
            if tp not in still or tp in self._timed_out:
                continue
            timed = replace(mark, timeout=True, exits=(*mark.exits, "timeout"))
            offsets = [TopicPartition(*tp, mark.offset, metadata=timed.encode())]
            try:
                commit_sync(self.consumer, offsets, serve=serve)
            except KafkaException as exc:
                if tp not in self._timed_out:  # else marked meanwhile, by the revoke callback
                    self.log.warning("mark_failed", partition=tp[1], error=str(exc.args[0]))
                continue
            self._timed_out.add(tp)

    def _count(self, outcome: Outcome[Message]) -> None:
        self.counts["results"] += len(outcome.results)
        self.counts["dead_letters"] += len(outcome.dead)
        self.counts["repeats"] += len(outcome.repeats)
        self.counts["batches"] += 1
        self.profiler.record(outcome.seconds)
        metrics = self.metrics
        metrics.results.inc(len(outcome.results))
        for _, failure in outcome.dead:
            metrics.dead_letters.labels(failure.stage).inc()
        metrics.duplicates.inc(len(outcome.repeats))
        metrics.batches.inc()
        metrics.batch_size.observe(len(outcome.results) + len(outcome.dead) + len(outcome.repeats))
        metrics.observe_stages(outcome.seconds)
        metrics.observe_stages(outcome.backend_seconds, prefix="backend.")

    # -- commits and rebalances ----------------------------------------------------------------

    def _settle(
        self,
        partitions: Collection[TP] | None,
        commit: bool,
        wait_s: float = FLUSH_WAIT_S,
        periodic: bool = False,
        marks: Mapping[TP, Mark] | None = None,
    ) -> None:
        """(between batches) Commit what is done (of these partitions), or abandon it when
        they were lost, or commit it with these crash marks; after an abort, forget its
        answers and re-read its partitions. A fenced producer stops the replica."""
        try:
            encoded = {tp: (m.offset, m.encode()) for tp, m in (marks or {}).items()}
            if encoded:
                aborted = self.checkpoint.mark(encoded, wait_s)
            elif commit:
                aborted = self.checkpoint.commit(partitions, wait_s, periodic)
            else:
                aborted = self.checkpoint.abandon()
        except FencedError as exc:  # never raised out of a rebalance callback
            self._unusable(exc)
            return
        if aborted is not None:
            self._rewind(aborted)

    def _unusable(self, exc: FencedError) -> None:
        """The producer can no longer commit (fenced, stuck): the replica stops uncommitted."""
        self.state.fail(str(exc))
        if isinstance(exc, TransactionRefused):  # a right missing, as the publisher says it
            if self.publisher.unauthorized:
                return  # said already, naming the topic
            self.log.error(
                "not_authorized",
                topics=[self.settings.results_topic, self.settings.dead_letter_topic],
                operation="Write",
                error=exc.error.str(),
                consequence="the replica stops; its transaction is aborted, nothing committed",
            )
            return
        self.log.error("transaction_failed", error=str(exc), kind=type(exc).__name__)

    def _rewind(self, aborted: Aborted) -> None:
        self.answered.release(aborted.keys)
        self.assignment.rewind(aborted.rewind)
        self.counts["aborts"] += 1
        self.metrics.aborts.inc()
        self.log.warning("transaction_aborted", partitions=sorted(p for _, p in aborted.rewind))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing calls on_revoke (partitions lost, if any) and then on_assign
        # (partitions gained, maybe none), in each of a rebalance's rounds: one line per
        # change, here, with both (and the first, so that a replica's joining shows).
        gained = sorted(p.partition for p in partitions)
        lost, self._lost_in_rebalance = sorted(self._lost_in_rebalance), set()
        held = self.assignment.assign([(p.topic, p.partition) for p in partitions])
        if partitions and self.settings.max_crash_attempts:
            self._suspect(consumer, partitions)
        first = not self.counts["rebalances"]
        log = self.log.info if gained or lost or first else self.log.debug
        log("partitions_assigned", partitions=gained, lost=lost, held=held)
        self.counts["rebalances"] += 1
        self.metrics.rebalances.labels("assigned").inc()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self._release(tps, commit=True)
        self._lost_in_rebalance |= {p for _, p in tps}
        if self._shutdown_by is not None:  # leaving the group: no assignment follows
            self.log.info("partitions_revoked", partitions=sorted(p for _, p in tps))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = {(p.topic, p.partition) for p in partitions}
        self._release(tps, commit=False)
        self.log.warning("partitions_lost", partitions=sorted(p for _, p in tps))

    def _release(self, tps: set[TP], commit: bool) -> None:
        """(rebalance callbacks) Stop working on these partitions: drop their queued records,
        let a running batch finish, and (when still owned) commit what is done before they
        go. Its commits are made on this thread (`rebalance_callback`), except in the
        callbacks close() runs: a commit there was seen never to return, and on commit_sync's
        own thread it fails within its bound instead."""
        deadline = self._shutdown_by or time.monotonic() + self.settings.shutdown_timeout_s
        executing, timeout_s = self._executing, self.settings.execute_timeout_s
        if executing is not None and timeout_s is not None:
            # A batch that may be hung: wait no longer than the watchdog would let it run.
            deadline = min(deadline, executing[0] + timeout_s)
        self.assignment.release(tps)
        on_this_thread = rebalance_callback() if self._shutdown_by is None else nullcontext()
        with on_this_thread, self.gate.between(deadline) as between:
            # A batch still running, or an unusable producer: what is uncommitted is read
            # again by the partitions' next owner.
            if between and self.state.fatal is None:
                # A range being narrowed stays marked for the next owner, which goes on.
                leaving = self.quarantine.leaving(tps, self.checkpoint.position) if commit else {}
                wait_s = max(0.0, deadline - time.monotonic())
                self._settle(tps, commit, wait_s, marks=leaving or None)
            elif commit and executing is not None and self._hung(executing):
                # Hung past its timeout as its partitions go: say so now, while they are ours
                # (the watchdog, next, would find the group's generation moved on).
                self._mark_timed_out(executing[1], tps)
        self.quarantine.released(list(tps))
        self.registry_wait.forget(tps)
        self.checkpoint.forget(tps)
        self.backpressure.forget(tps)
        self.metrics.rebalances.labels("revoked" if commit else "lost").inc()
        for topic, partition in tps:
            try:
                self.metrics.lag.remove(topic, str(partition))
            except KeyError:
                pass  # never measured

    def _shutdown(self, worker: threading.Thread) -> None:
        self._shutdown_by = deadline = time.monotonic() + self.settings.shutdown_timeout_s
        # Records not yet started are dropped uncommitted: the next owner reads them again.
        self.assignment.drop_queued()
        self._worker_stop.set()
        self.assignment.queues.close()
        worker.join(max(0.0, deadline - time.monotonic()))
        if self.state.fatal is None and not worker.is_alive():
            with self.gate.between(deadline) as between:
                if between:
                    self._settle(None, True, max(0.0, deadline - time.monotonic()))
        self.consumer.close()  # leaves the group (its revoke callback finds nothing left to do)
        counts = self.counts
        self.log.info(
            "replica_stopped",
            records_in=counts["records_in"],
            results=counts["results"] - self.publisher.undelivered,  # delivered ones only
            dead_letters=counts["dead_letters"],
            repeats=counts["repeats"],
            retries=counts["retries"],
            batches=counts["batches"],
            aborts=counts["aborts"],
            fatal=self.state.fatal,
            stages_ms=self.stage_summary(),
        )

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """Per-stage latency (ms) of the replica's batches and the backend's own stages."""
        stats = dict(self.profiler.stats())
        backend = self.pipeline.backend.profiler.stats()
        stats |= {f"backend.{k}": v for k, v in backend.items()}
        return {
            name: {
                "count": s.count,
                "mean": round(s.mean_s * 1000, 3),
                "p50": round(s.p50_s * 1000, 3),
                "p99": round(s.p99_s * 1000, 3),
            }
            for name, s in stats.items()
        }


def _next(ahead: queue.Queue[Ahead]) -> Ahead:
    """The next prepared batch, or an empty one after a moment without one."""
    try:
        return ahead.get(timeout=0.1)
    except queue.Empty:
        return Taken([], {}), None
