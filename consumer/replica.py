"""One consumer replica: a fetch side and an inference side joined by bounded queues.

The main thread owns the Kafka consumer: it polls (so a slow model never trips
`max.poll.interval.ms`), queues records per partition, pauses partitions whose queue is full,
commits between batches, and handles rebalances. A worker thread takes micro-batches from the
queues, runs the pipeline and produces results and dead letters. With `overlap`, a second
thread takes and prepares the next batch (decode, the backend's host stages) while the worker
completes the current one (the backend's execute, on an accelerator, say). At-least-once commits a
partition's offsets only after a producer flush has seen every output of the records before
them acknowledged (consumer/offsets.py); exactly-once commits them inside the transaction
that holds those outputs (consumer/transactions.py).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer.batcher import PartitionQueues
from consumer.codecs import make_decoder, make_result_encoder
from consumer.dedup import AnsweredKeys
from consumer.headers import (
    TRACE_HEADERS,
    ResultHeaders,
    dead_letter_headers,
    trace_headers,
)
from consumer.kafka_logs import kafka_logger
from consumer.metrics import Probes, ReplicaMetrics, serve
from consumer.offsets import OffsetTracker
from consumer.pipeline import Outcome, Pipeline, Staged
from consumer.settings import (
    RuntimeSettings,
    SettingsError,
    consumer_config,
    producer_config,
    replica_instance,
)
from consumer.tracing import Tracing
from consumer.transactions import Aborted, FencedError, Transaction
from packflow import InferenceBackend
from packflow.loaders import InferenceBackendLoader, load_backend
from packflow.logging import get_logger
from packflow.profiling import Profiler

TP = tuple[str, int]
Runs = list[tuple[TP, list[Message]]]
# A taken micro-batch: its runs, each partition's assignment generation when it was taken,
# and (with overlap) the batch already prepared.
Taken = tuple[Runs, dict[TP, int], Staged[Message] | None]
_FETCH_MAX = 1000
_FLUSH_WAIT_S = 5.0  # for acknowledgements before a periodic commit; later ones retry
_HOLD_S = 1.0  # a full queue holds fetching this long before its partition is paused


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


def _next(ahead: queue.Queue[Taken]) -> Taken:
    """The next prepared batch, or an empty one after a moment without one."""
    try:
        return ahead.get(timeout=0.1)
    except queue.Empty:
        return [], {}, None


def _where(message: Message) -> tuple[str, int, int]:
    """topic, partition, offset of a consumed message (never None for one without error)."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


class Replica:
    """Constructing one touches no network; `run()` does, until `stop()` or a fatal error."""

    def __init__(
        self, settings: RuntimeSettings, index: int = 0, owner_pid: int | None = None
    ) -> None:
        self.settings = settings
        self.index = index
        self.instance = replica_instance(settings, index, owner_pid or os.getpid())
        self.log = get_logger(replica=index, pid=os.getpid())
        self.counts: Counter[str] = Counter()
        self.fatal: str | None = None
        self._stop = threading.Event()
        self._worker_stop = threading.Event()
        self._tracker = OffsetTracker()
        self._queues: PartitionQueues[TP, Message] = PartitionQueues(
            settings.max_queued_per_partition
        )
        self._answered = AnsweredKeys(settings.dedup_max_keys, settings.dedup_ttl_s)
        # Guards `_assigned`, `_rewinding` and `_seeks` between the fetch side and the worker.
        self._lock = threading.Lock()
        # Assigned partitions -> their generation, renewed at each assignment and rewind: a
        # batch taken before either must not run (its records will be read again).
        self._assigned: dict[TP, int] = {}
        self._generations = itertools.count(1)
        self._lost_in_rebalance: set[int] = set()
        self._paused: set[TP] = set()
        self._full_since: dict[TP, float] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._backend: InferenceBackend | None = None
        self._result_headers = ResultHeaders("", "")
        self._tracing = Tracing("")
        # decode/backend/encode wall time per batch; the backend profiles its own stages.
        self.profiler = Profiler()
        self.metrics = ReplicaMetrics()
        # Both read the replica's own state: partitions held, a fatal error.
        self.metrics.assigned.set_function(lambda: len(self._assigned))
        self.probes = Probes(
            settings.stuck_after_s, partitions=lambda: len(self._assigned), fatal=lambda: self.fatal
        )
        self._shutdown_by: float | None = None  # set once shutting down: no wait goes past it
        # The worker holds `_batch_lock` while it runs and publishes a batch; the fetch side
        # commits (offsets, or the transaction) holding it, between batches. `_commit_due`
        # asks the worker to stop taking batches until that commit is done.
        self._batch_lock = threading.Lock()
        self._commit_due = threading.Event()
        # Exactly-once: the open transaction, and partitions to re-read after an abort (the
        # fetch side seeks them).
        self._txn: Transaction | None = None
        self._rewinding: set[TP] = set()
        self._seeks: dict[TP, int] = {}

    def stop(self) -> None:
        """Ask the replica to shut down gracefully (safe from a signal handler)."""
        self._stop.set()

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code (0 after a graceful shutdown)."""
        self._bind_log_context()
        server = self._serve_metrics()
        try:
            return self._run()
        finally:
            if server is not None:
                server.shutdown()

    def _bind_log_context(self) -> None:
        # Every event of this thread carries the replica, the backend's own included.
        structlog.contextvars.bind_contextvars(replica=self.index, pid=os.getpid())

    def _serve_metrics(self) -> Any:
        settings = self.settings
        if settings.metrics_port is None:
            return None
        port = settings.metrics_port + self.index if settings.metrics_port else 0
        server = serve(self.metrics, self.probes, settings.metrics_host, port)
        self.log.info("metrics_serving", host=settings.metrics_host, port=server.server_port)
        return server

    def _run(self) -> int:
        settings = self.settings
        self._backend = backend = load_backend_for(settings)
        self.probes.initialised = True
        self._result_headers = ResultHeaders(backend.name, str(backend.version))
        self._tracing = Tracing.start(backend.name)
        self.log = self.log.bind(backend=backend.name, backend_version=str(backend.version))
        pipeline = Pipeline(
            backend,
            make_decoder(
                settings.codec,
                settings.input_schema,
                writer_schema=settings.writer_schema,
                known_schemas=settings.known_schemas,
                registry_url=settings.registry_url,
            ),
            make_result_encoder(settings.result_format),
            self._answered,
            settings.id_field,
        )
        # Delivery reports only for failures: success is learnt from a flush before each
        # commit (at-least-once) or from the transaction's commit (exactly-once).
        self._producer = Producer(
            producer_config(settings, self.instance)
            | {"on_delivery": self._delivery_failed, "logger": kafka_logger("producer")}
        )
        self._consumer = Consumer(
            consumer_config(settings, self.index)
            # The client id names the replica in `packflow status` and the broker's logs.
            | {
                "on_commit": self._on_commit,
                "client.id": f"packflow-{self.instance}",
                "logger": kafka_logger("consumer"),
            }
        )
        if settings.guarantee == "exactly-once":
            # Fences an earlier instance with the same id and aborts its open transaction.
            self._producer.init_transactions(settings.shutdown_timeout_s)
            self._txn = Transaction(
                self._producer, self._consumer, settings.commit_interval_ms / 1000
            )
        self._consumer.subscribe(
            [settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        worker = threading.Thread(target=self._work, args=(pipeline,), name="inference")
        worker.start()
        self.log.info(
            "replica_started",
            group=settings.group_id,
            topic=settings.input_topic,
            guarantee=settings.guarantee,
        )
        try:
            self._fetch_loop()
        finally:
            self._shutdown(worker)
        return 0 if self.fatal is None else 1

    def _fetch_loop(self) -> None:
        consumer, producer = self._consumer, self._producer
        assert consumer is not None and producer is not None
        interval = self.settings.commit_interval_ms / 1000
        next_commit = time.monotonic() + interval
        while not self._stop.is_set() and self.fatal is None:
            self.probes.loop_turned = time.monotonic()
            self._seek_rewound()
            if self._backpressure():
                # consume(n, timeout) waits for n records or the timeout: at a moderate rate
                # that would hold every record up to the timeout. Wait for the first one only,
                # then take what else is there.
                first = consumer.poll(0.05)
                if first is not None:
                    self._accept([first, *consumer.consume(_FETCH_MAX - 1, timeout=0)])
            else:
                time.sleep(0.002)  # the worker drains; librdkafka prefetches up to its bound
            producer.poll(0)
            if self._txn is None and time.monotonic() >= next_commit:
                self._commit_due.set()  # exactly-once: the worker sets it
            # Without blocking: the loop keeps polling while a long batch runs.
            if self._commit_due.is_set() and self._batch_lock.acquire(timeout=0.05):
                try:
                    if self._txn is None:
                        self._commit(asynchronous=True)
                    else:
                        self._end_transaction()
                finally:
                    self._commit_due.clear()
                    self._batch_lock.release()
                next_commit = time.monotonic() + interval
                self._measure_lag()

    def _measure_lag(self) -> None:
        """Per assigned partition: records between what is done and the partition's end."""
        consumer = self._consumer
        assert consumer is not None
        with self._lock:
            assigned = list(self._assigned)
        try:
            positions = consumer.position([TopicPartition(*tp) for tp in assigned])
        except KafkaException:
            return
        for p in positions:
            if p.offset < 0:
                continue  # nothing fetched yet
            _, high = consumer.get_watermark_offsets(p, cached=True)
            if high >= 0:
                queued = self._queues.size((p.topic, p.partition))
                lag = max(0, high - p.offset) + queued
                self.metrics.lag.labels(p.topic, str(p.partition)).set(lag)

    def _accept(self, messages: list[Message]) -> None:
        by_partition: dict[TP, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._consumer_error(error)
                continue
            tp = (message.topic(), message.partition())  # never None without an error
            run = by_partition.get(tp)  # type: ignore[arg-type]
            if run is None:
                by_partition[tp] = [message]  # type: ignore[index]
            else:
                run.append(message)
        with self._lock:
            # Fetched before an abort's seek: they will be read again from the rewind point.
            for tp in self._rewinding & by_partition.keys():
                del by_partition[tp]
            for tp, batch in by_partition.items():
                self._queues.put(tp, batch)
                self.counts["records_in"] += len(batch)
                self.metrics.records_in.inc(len(batch))

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = f"consumer: {error.str()}"
            self.log.error("consumer_fatal", error=error.str())
        else:
            self.log.warning("consumer_error", error=error.str(), code=error.name())

    def _backpressure(self) -> bool:
        """Whether to fetch now. A full partition queue first holds fetching for a moment
        (the worker drains it while librdkafka keeps its prefetched records); one that stays
        full (a slow model) is paused, so that the loop polls on (rebalances,
        `max.poll.interval.ms`). Pausing at once would make librdkafka drop and re-fetch its
        prefetched records at every pause, which costs a fast pipeline a third of its rate."""
        consumer = self._consumer
        assert consumer is not None
        limit = self._queues.max_per_partition
        now = time.monotonic()
        hold = False
        with self._lock:
            assigned = list(self._assigned)
        for tp in assigned:
            size = self._queues.size(tp)
            if tp not in self._paused and size >= limit:
                since = self._full_since.setdefault(tp, now)
                if now - since < _HOLD_S:
                    hold = True
                    continue
                del self._full_since[tp]
                consumer.pause([TopicPartition(*tp)])
                self._paused.add(tp)
            elif tp not in self._paused:
                self._full_since.pop(tp, None)
            elif size <= limit // 2:
                consumer.resume([TopicPartition(*tp)])
                self._paused.discard(tp)
        return not hold

    # -- the inference side --------------------------------------------------------------------

    def _work(self, pipeline: Pipeline) -> None:
        self._bind_log_context()
        ahead: queue.Queue[Taken] | None = None
        preparer = None
        if self.settings.overlap:
            ahead = queue.Queue(maxsize=1)
            preparer = threading.Thread(
                target=self._prepare_ahead, args=(pipeline, ahead), name="prepare", daemon=True
            )
            preparer.start()
        try:
            while not self._worker_stop.is_set():
                if self._commit_due.is_set():
                    time.sleep(0.002)  # the fetch side is committing: keep out of its way
                    continue
                runs, generations, staged = self._take() if ahead is None else _next(ahead)
                with self._batch_lock:
                    self._complete(pipeline, runs, generations, staged)
                # Exactly-once commits when the interval is up, or at once when the input is
                # idle. The fetch side commits: librdkafka's send_offsets_to_transaction waits
                # for a rebalance in progress, which only the polling thread can finish.
                txn = self._txn
                if txn is not None and (txn.due() or (not runs and txn.open)):
                    self._commit_due.set()
        except Exception as exc:  # a bug, not bad data: stop the replica without committing it
            self.fatal = f"inference worker: {type(exc).__name__}: {exc}"
            self.log.exception("worker_failed")
        finally:
            self._worker_stop.set()
            if preparer is not None:
                preparer.join()

    def _take(self) -> Taken:
        settings = self.settings
        runs = self._queues.take_runs(settings.max_batch_size, settings.max_wait_ms / 1000)
        with self._lock:
            assigned = self._assigned
            return runs, {tp: assigned.get(tp, 0) for tp, _ in runs}, None

    def _prepare_ahead(self, pipeline: Pipeline, ahead: queue.Queue[Taken]) -> None:
        """(overlap) Take and prepare batches, one ahead of the worker."""
        self._bind_log_context()
        try:
            while not self._worker_stop.is_set():
                runs, generations, _ = self._take()
                messages = [m for _, run in runs for m in run]
                taken = (runs, generations, pipeline.prepare(messages) if messages else None)
                while not self._worker_stop.is_set():
                    try:
                        ahead.put(taken, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # a bug, not bad data: stop the replica
            self.fatal = f"prepare: {type(exc).__name__}: {exc}"
            self.log.exception("prepare_failed")

    def _complete(
        self,
        pipeline: Pipeline,
        runs: Runs,
        generations: dict[TP, int],
        staged: Staged[Message] | None,
    ) -> None:
        """(holding `_batch_lock`) Run and publish the runs of partitions still assigned
        since they were taken, then record their offsets (or the transaction's reads). A
        revoke drops a partition, then waits for the batch lock, so no batch works on it
        afterwards."""
        with self._lock:
            assigned = self._assigned
            owned = [(tp, run) for tp, run in runs if assigned.get(tp) == generations[tp]]
        if staged is not None and len(owned) < len(runs):
            # Prepared with records no longer ours: prepare the rest again.
            pipeline.abandon(staged)
            staged = None
        if not owned:
            return
        # Runs keep offset order: per partition, the first and last offsets read.
        read = [(tp, run[0].offset() or 0, run[-1].offset() or 0) for tp, run in owned]
        txn = self._txn
        if txn is not None:
            txn.begin()
        if staged is None:
            outcome = pipeline([m for _, run in owned for m in run])
        else:
            outcome = pipeline.complete(staged)
        self._publish(outcome)
        if txn is None:
            self._tracker.published({tp: last + 1 for tp, _, last in read})
        else:
            txn.read(read, [key for _, key, _ in outcome.results])

    def _end_transaction(self) -> None:
        """(fetch side, holding `_batch_lock`) Commit the open transaction; after an abort,
        forget its answers and have its partitions re-read from where it began. A fenced
        producer makes the replica stop."""
        assert self._txn is not None
        try:
            aborted = self._txn.commit(self.settings.shutdown_timeout_s)
        except FencedError as exc:  # never raised out of a rebalance callback
            self._transaction_failed(exc)
            return
        if aborted is not None:
            self._rewind(aborted)

    def _rewind(self, aborted: Aborted) -> None:
        self._answered.release(aborted.keys)
        with self._lock:
            for tp in aborted.rewind.keys() & self._assigned.keys():
                self._assigned[tp] = next(self._generations)
            self._rewinding |= aborted.rewind.keys()
            self._queues.drop(aborted.rewind.keys())
            self._seeks.update(aborted.rewind)
        self.counts["aborts"] += 1
        self.metrics.aborts.inc()
        self.log.warning("transaction_aborted", partitions=sorted(p for _, p in aborted.rewind))

    def _seek_rewound(self) -> None:
        """(fetch side) Move rewound partitions back to where their aborted work began."""
        if not self._seeks:
            return
        consumer = self._consumer
        assert consumer is not None
        with self._lock:
            seeks, self._seeks = self._seeks, {}
        for (topic, partition), offset in seeks.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer ours: its next owner reads it
                self.log.info("seek_skipped", partition=partition, error=str(exc.args[0]))
        with self._lock:
            self._rewinding -= seeks.keys()

    def _publish(self, outcome: Outcome[Message]) -> None:
        self._publish_results(outcome)
        self._publish_dead_letters(outcome)
        self._count(outcome)

    def _publish_results(self, outcome: Outcome[Message]) -> None:
        settings = self.settings
        produce, results = self._produce, settings.results_topic
        if self._tracing.recording:
            for message, key, value in outcome.results:
                original = message.headers()
                headers = (
                    self._result_headers(original, *_where(message))
                    if settings.result_headers
                    else trace_headers(original)
                )
                produce(results, key.encode(), value, self._traced(message, headers, outcome))
        elif settings.result_headers:
            headers_of = self._result_headers
            for message, key, value in outcome.results:
                headers = headers_of(message.headers(), *_where(message))
                produce(results, key.encode(), value, headers)
        else:
            for message, key, value in outcome.results:
                original = message.headers()  # None unless the input has headers
                produce(results, key.encode(), value, trace_headers(original) if original else None)

    def _publish_dead_letters(self, outcome: Outcome[Message]) -> None:
        backend, settings = self._backend, self.settings
        assert backend is not None
        name, version = backend.name, str(backend.version)
        for message, failure in outcome.dead:
            topic, partition, offset = _where(message)
            headers = dead_letter_headers(
                message.headers(),
                stage=failure.stage,
                error_type=failure.error_type,
                message=failure.message,
                topic=topic,
                partition=partition,
                offset=offset,
                backend=name,
                backend_version=version,
            )
            if self._tracing.recording:
                headers = self._traced(message, headers, outcome) or []
            self._produce(settings.dead_letter_topic, message.key(), message.value(), headers)
            self.log.warning(
                "dead_letter",
                stage=failure.stage,
                error_type=failure.error_type,
                partition=partition,
                offset=offset,
            )

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

    def _traced(
        self, message: Message, headers: list[tuple[str, bytes]] | None, outcome: Outcome[Message]
    ) -> list[tuple[str, bytes]] | None:
        """`headers` with the record's trace context replaced by its `packflow process`
        span's (consumer/tracing.py); untraced records' headers are left as they are."""
        kept = trace_headers(message.headers())
        if not kept or headers is None:
            return headers
        child = self._tracing.child(kept, _where(message), outcome.started_ns)
        return [h for h in headers if h[0] not in TRACE_HEADERS] + child

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        producer = self._producer
        assert producer is not None
        while True:
            try:
                # list[tuple[str, bytes]] is accepted
                producer.produce(topic, value=value, key=key, headers=headers)  # type: ignore[arg-type]
                return
            except BufferError:
                producer.poll(0.05)  # the local queue is full: let librdkafka drain it

    def _delivery_failed(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        # A result's key is its input's idempotency key; a dead letter's, the input's own.
        where = {"topic": message.topic(), "key": (message.key() or b"").decode(errors="replace")}
        if self._txn is not None:
            # The transaction's commit fails on it and is aborted: nothing to do here.
            self.log.warning("delivery_failed", error=error.str(), **where)
            return
        # librdkafka already retried; committing past the record would lose it: stop instead.
        self.fatal = f"producer: {error.str()}"
        self.log.error("delivery_failed", error=error.str(), **where)

    # -- commits and rebalances ----------------------------------------------------------------

    def _commit(
        self, only: set[TP] | None = None, wait_s: float = _FLUSH_WAIT_S, asynchronous: bool = False
    ) -> None:
        """(at-least-once, between batches) Flush the producer, then commit the positions of
        what it has delivered. Periodic commits are asynchronous (the worker waits for the
        flush only); those before partitions go are synchronous."""
        consumer, producer = self._consumer, self._producer
        assert consumer is not None and producer is not None
        positions = self._tracker.to_commit()
        if only is not None:
            positions = {tp: o for tp, o in positions.items() if tp in only}
        if not positions:
            return
        unacknowledged = producer.flush(wait_s)
        if unacknowledged or self.fatal is not None:
            # Not all of it is acknowledged yet (a broker away): commit nothing now; the next
            # commit tries again, or the partitions' next owner re-reads them.
            self.log.warning("commit_deferred", unacknowledged=unacknowledged)
            return
        try:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the same positions are committed on the next attempt, or re-read
            # by the partitions' next owner.
            self.log.warning("commit_failed", error=str(exc.args[0]))
            return
        self._tracker.committed(positions)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is None:
            return
        # An asynchronous commit failed: commit these positions again next time (a failure
        # only ever repeats results; it cannot lose one).
        self._tracker.retry([(p.topic, p.partition) for p in partitions])
        self.log.warning("commit_failed", error=error.str())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing calls on_revoke (partitions lost, if any) and then on_assign
        # (partitions gained, maybe none), in each of a rebalance's rounds: one line per
        # change, here, with both (and the first, so that a replica's joining shows).
        gained = sorted(p.partition for p in partitions)
        lost, self._lost_in_rebalance = sorted(self._lost_in_rebalance), set()
        with self._lock:
            for p in partitions:
                self._assigned[(p.topic, p.partition)] = next(self._generations)
            held = sorted(p for _, p in self._assigned)
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
        """Stop working on these partitions: drop their queued records, let a running batch
        finish, and (when still owned) commit what is done before they go."""
        deadline = self._shutdown_by or time.monotonic() + self.settings.shutdown_timeout_s
        with self._lock:
            for tp in tps:
                self._assigned.pop(tp, None)
            self._queues.drop(tps)
        if self._txn is not None:
            self._settle_transaction(commit, deadline)
        elif commit:
            with self._between_batches(deadline) as between:
                if between:
                    self._commit(only=tps, wait_s=max(0.0, deadline - time.monotonic()))
        self._tracker.forget(list(tps))
        self._paused -= tps
        self.metrics.rebalances.labels("revoked" if commit else "lost").inc()
        for topic, partition in tps:
            try:
                self.metrics.lag.remove(topic, str(partition))
            except KeyError:
                pass  # never measured
        for tp in tps:
            self._full_since.pop(tp, None)

    @contextmanager
    def _between_batches(self, deadline: float) -> Iterator[bool]:
        """Hold `_batch_lock` (the worker is between batches), waiting until `deadline` at
        most; yields whether it was had."""
        # The worker takes no new batch until the fetch loop's next commit clears this.
        self._commit_due.set()
        had = self._batch_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            yield had
        finally:
            if had:
                self._batch_lock.release()

    def _settle_transaction(self, commit: bool, deadline: float) -> None:
        """Before partitions go: commit the open transaction (it holds their offsets), or,
        when they were lost to another member, abort it (its commit would be fenced)."""
        assert self._txn is not None
        with self._between_batches(deadline) as between:
            if not between or self.fatal is not None:
                # A batch still running, or an unusable producer: whatever the transaction
                # holds is aborted (by its timeout, or by the successor) and re-read.
                return
            if commit:
                self._end_transaction()
            elif self._txn.open:
                try:
                    self._rewind(self._txn.abort(self.settings.shutdown_timeout_s))
                except FencedError as exc:
                    self._transaction_failed(exc)

    def _transaction_failed(self, exc: FencedError) -> None:
        self.fatal = str(exc)
        self.log.error("transaction_failed", error=str(exc), kind=type(exc).__name__)

    def _shutdown(self, worker: threading.Thread) -> None:
        consumer, producer = self._consumer, self._producer
        assert consumer is not None and producer is not None
        self._shutdown_by = deadline = time.monotonic() + self.settings.shutdown_timeout_s
        # Records not yet started are dropped uncommitted: the next owner reads them again.
        with self._lock:
            self._queues.drop(list(self._assigned))
        self._worker_stop.set()
        self._queues.close()
        worker.join(max(0.0, deadline - time.monotonic()))
        if self.fatal is None and not worker.is_alive():
            if self._txn is not None:
                self._settle_transaction(commit=True, deadline=deadline)
            else:
                self._commit(wait_s=max(0.0, deadline - time.monotonic()))
        consumer.close()  # leaves the group (its revoke callback finds nothing left to do)
        self.log.info(
            "replica_stopped",
            records_in=self.counts["records_in"],
            results=self.counts["results"],
            dead_letters=self.counts["dead_letters"],
            repeats=self.counts["repeats"],
            batches=self.counts["batches"],
            aborts=self.counts["aborts"],
            fatal=self.fatal,
            stages_ms=self.stage_summary(),
        )

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """Per-stage latency (ms) of the replica's batches and the backend's own stages."""
        stats = dict(self.profiler.stats())
        if self._backend is not None:
            stats |= {f"backend.{k}": v for k, v in self._backend.profiler.stats().items()}
        return {
            name: {
                "count": s.count,
                "mean": round(s.mean_s * 1000, 3),
                "p50": round(s.p50_s * 1000, 3),
                "p99": round(s.p99_s * 1000, 3),
            }
            for name, s in stats.items()
        }
