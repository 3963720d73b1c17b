"""A replica's Prometheus metrics and its `/metrics`, `/healthz` and `/readyz` endpoints.

Each replica process serves its own registry on its own port (`--metrics-port P`: replica i
listens on P + i; 0 picks a free port, logged as `metrics_serving`), so `--replicas N` needs
no shared multiprocess directory and a scrape sees one replica's counts.

- `/metrics`: the registry below, in Prometheus' text format.
- `/healthz`: 200 while the process is alive and its fetch loop has turned within
  `stuck_after_s` (a loop stuck in a call answers 503), no fatal error stopped it and no
  batch ran past `execute_timeout_s` (503 naming it while the replica ends). While it
  narrows partitions after a crash, 200 says which.
- `/readyz`: 200 once the backend is initialised and the replica holds partitions; 503
  naming them while partitions wait for an unreachable Schema Registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
_SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


class ReplicaMetrics:
    """The counters, histograms and gauges of one replica, in a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.records_in = Counter("packflow_records_in", "Records consumed.", registry=r)
        self.results = Counter("packflow_results", "Results produced.", registry=r)
        self.dead_letters = Counter(
            "packflow_dead_letters", "Records dead-lettered, by failing stage.", ["stage"],
            registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "packflow_duplicates_dropped", "Repeats of answered keys, dropped.", registry=r
        )
        self.retries = Counter(
            "packflow_retries",
            "Backend calls retried after a backoff (a batch's or, once split, a record's).",
            registry=r,
        )
        self.publish_rejected = Counter(
            "packflow_publish_rejected",
            "Outputs the producer or broker refused for good (too large, invalid), by topic "
            "kind: a rejected result becomes a dead letter with stage publish; a rejected dead "
            "letter is sent again truncated.",
            ["kind"],
            registry=r,
        )
        self.batches = Counter("packflow_batches", "Micro-batches run.", registry=r)
        self.batch_size = Histogram(
            "packflow_batch_size", "Records per micro-batch.", buckets=_SIZE_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "packflow_stage_seconds",
            "Seconds per micro-batch in each stage: decode, backend, encode, and the backend's "
            "own (backend.preprocess, backend.execute, ...).",
            ["stage"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "packflow_consumer_lag",
            "Records behind the partition's end, per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.rebalances = Counter(
            "packflow_rebalances", "Partition assignments and revocations.", ["kind"], registry=r
        )
        self.aborts = Counter(
            "packflow_transaction_aborts", "Exactly-once transactions aborted.", registry=r
        )
        self.crash_suspected = Counter(
            "packflow_crash_suspected",
            "Partitions assigned where the previous owner died inside a marked batch (then "
            "narrowed record by record).",
            registry=r,
        )
        self.quarantined = Counter(
            "packflow_crash_quarantined",
            "Records dead-lettered unrun after killing replicas max_crash_attempts times, by "
            "reason (crash, timeout).",
            ["reason"],
            registry=r,
        )
        self.execute_timeouts = Counter(
            "packflow_execute_timeouts",
            "Batches that ran past execute_timeout_s (the replica then ends).",
            registry=r,
        )
        self.registry_waits = Counter(
            "packflow_registry_waits",
            "Times partitions were paused because the records needed a schema from a Schema "
            "Registry that could not be asked (tried again after a backoff).",
            registry=r,
        )
        self.assigned = Gauge("packflow_assigned_partitions", "Partitions held.", registry=r)

    def observe_stages(self, seconds: dict[str, float], prefix: str = "") -> None:
        for stage, value in seconds.items():
            self.stage_seconds.labels(prefix + stage).observe(value)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok, why = self.server.healthy()
            self._send(200 if ok else 503, why.encode(), "text/plain")
        elif path == "/readyz":
            ok, why = self.server.ready()
            self._send(200 if ok else 503, why.encode(), "text/plain")
        else:
            self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes every few seconds would drown the replica's own log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: ReplicaMetrics
    healthy: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]


class Probes:
    """What `/healthz` and `/readyz` answer. The replica marks the loop's turns and the
    backend's initialisation; partitions held and a fatal error are read from it."""

    def __init__(
        self,
        stuck_after_s: float,
        partitions: Callable[[], int],
        fatal: Callable[[], str | None],
    ) -> None:
        self.stuck_after_s = stuck_after_s
        # Set by the replica: why it is unhealthy (an execute timeout), or a note (narrowing).
        self.failing: str | None = None
        self.note: Callable[[], str | None] = lambda: None
        # Set by the replica: why partitions cannot go on now (the Schema Registry away).
        self.waiting: Callable[[], str | None] = lambda: None
        # Set by the replica: why no broker can be reached (consumer/broker_reach.py).
        self.unreachable: Callable[[], str | None] = lambda: None
        self.loop_turned = time.monotonic()
        self.initialised = False
        self.partitions = partitions
        self.fatal = fatal

    def healthy(self) -> tuple[bool, str]:
        fatal = self.fatal()
        if fatal is not None:
            return False, f"failed: {fatal}\n"
        if self.failing is not None:
            return False, f"failed: {self.failing}\n"
        idle = time.monotonic() - self.loop_turned
        if idle > self.stuck_after_s:
            return False, f"fetch loop stuck for {idle:.0f}s\n"
        note = self.note()
        return True, f"ok: {note}\n" if note else "ok\n"

    def ready(self) -> tuple[bool, str]:
        if not self.initialised:
            return False, "backend not initialised\n"
        unreachable = self.unreachable()
        if unreachable is not None:
            return False, f"{unreachable}\n"
        held = self.partitions()
        if not held:
            return False, "no partitions assigned\n"
        waiting = self.waiting()
        if waiting is not None:
            return False, f"{waiting}\n"
        return True, f"ok: {held} partitions\n"


def serve(metrics: ReplicaMetrics, probes: Probes, host: str, port: int) -> _Server:
    """Start serving in a daemon thread; returns the server (`server_address` has the port)."""
    server = _Server((host, port), _Handler)
    server.metrics = metrics
    server.healthy = probes.healthy
    server.ready = probes.ready
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
