"""`packflow demo`: the whole path on one machine, start to finish.

Starts the local broker (unless one is running), creates fresh topics, starts replicas of the
logistic backend, produces demo records once every replica holds partitions, waits until every
result is in, prints a summary and a few results, and stops what it started.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ..broker import LocalCluster
from ..broker_settings import BrokerSettings
from ..client import DeadLetters, Results
from ..contracts import load_schema
from ..generate import synthetic_records
from ..processes import ReplicaProcess, read_events
from ..settings import RuntimeSettings, load_settings
from ..topics import create_topics, pipeline_topics
from .options import SettingsFlags, settings_options
from .produce import produce_records

BACKEND = "packflow.examples.logistic:Backend"


@settings_options("replicas", defaults={"replicas": 2})
def demo(
    records: Annotated[int, typer.Option(min=1, help="demo records to produce")] = 20_000,
    partitions: Annotated[int, typer.Option(min=1)] = 6,
    timeout: Annotated[float, typer.Option(help="seconds to wait for all results")] = 300,
    *,
    flags: SettingsFlags,
) -> None:
    """Run the demo on the local broker (`packflow kafka start` settings apply: flags there,
    PACKFLOW_BROKER_* here)."""
    console = Console()
    cluster = LocalCluster(BrokerSettings())
    started_broker = not cluster.is_running()
    result = cluster.start()
    console.print(f"Kafka at {result.bootstrap}" + (" (started)" if started_broker else ""))
    run: ReplicaProcess | None = None
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        names = [f"packflow.demo-{stamp}.{kind}" for kind in ("input", "results", "dead-letter")]
        create_topics(
            result.bootstrap, pipeline_topics(names[0], names[1], names[2], partitions, 1)
        )
        settings = load_settings(
            **flags,
            bootstrap_servers=result.bootstrap,
            input_topic=names[0],
            results_topic=names[1],
            dead_letter_topic=names[2],
            group_id=f"packflow-demo-{stamp}",
            backend=BACKEND,
        )
        replicas = settings.replicas
        log = Path(tempfile.mkdtemp(prefix="packflow-demo-")) / "replicas.log"
        run = _start_replicas(settings.model_dump(mode="json"), log)
        console.print(f"running {replicas} replicas of {BACKEND} (logs: {log})")
        # Every replica in the group before the first record, so that they share the work.
        with contextlib.suppress(TimeoutError):
            run.wait_for_replicas(replicas, timeout)
        sent = produce_records(
            settings,
            synthetic_records(load_schema(settings.input_schema), records),
            total=records,
            progress=True,
        )
        console.print(f"produced {sent} records to {names[0]}")
        seen, first, last, sample = _await_results(settings, sent, timeout)
        code = _stop(run)
        run = None
        dead = sum(1 for _ in DeadLetters(settings, timeout_s=10))
        _summary(console, sent, seen, dead, first, last, read_events(log, "replica_stopped"), code)
        for item in sample:
            typer.echo(orjson.dumps(item).decode())
    finally:
        if run is not None:
            _stop(run)
        if started_broker:
            cluster.stop()
            console.print("stopped the broker the demo started")


def _start_replicas(settings: dict[str, Any], log: Path) -> ReplicaProcess:
    flags = [
        "--bootstrap-servers",
        settings["bootstrap_servers"],
        "--input-topic",
        settings["input_topic"],
        "--results-topic",
        settings["results_topic"],
        "--dead-letter-topic",
        settings["dead_letter_topic"],
        "--group-id",
        settings["group_id"],
        "--backend",
        settings["backend"],
        "--replicas",
        str(settings["replicas"]),
    ]
    return ReplicaProcess(flags, log, stdout=None)


def _await_results(
    settings: RuntimeSettings, expected: int, timeout: float
) -> tuple[int, float, float, list[dict[str, Any]]]:
    keys: set[str] = set()
    sample: list[dict[str, Any]] = []
    first = last = 0.0
    deadline = time.monotonic() + timeout
    for result in Results(settings, follow=True):
        # When each result was produced (its timestamp), not when this reader got to it.
        at = (result.timestamp_ms or 0) / 1000
        first = min(first, at) if first else at
        last = max(last, at)
        now = time.monotonic()
        keys.add(result.key)
        if len(sample) < 5:
            sample.append(result.envelope())
        if len(keys) >= expected or now > deadline:
            break
    return len(keys), first, last, sample


def _stop(run: ReplicaProcess) -> int:
    try:
        return run.terminate(60)
    except TimeoutError:
        return run.proc.returncode


def _summary(
    console: Console,
    sent: int,
    answered: int,
    dead: int,
    first: float,
    last: float,
    stopped: list[dict[str, Any]],
    code: int,
) -> None:
    table = Table("", "value", title="Packflow demo")
    table.add_row("records produced", str(sent))
    table.add_row("keys answered", str(answered))
    table.add_row("dead letters", str(dead))
    table.add_row("repeats dropped", str(sum(e.get("repeats", 0) for e in stopped)))
    if last > first:
        table.add_row("records/s (first to last result)", f"{answered / (last - first):,.0f}")
    table.add_row("replicas exit code", str(code))
    console.print(table)
    stages = Table("stage", "batches", "mean ms", "p50 ms", "p99 ms", title="per-stage latency")
    # Every stage any replica timed (a replica that got no partitions timed none).
    names = dict.fromkeys(name for e in stopped for name in e.get("stages_ms", {}))
    for name in names:
        per = [e["stages_ms"][name] for e in stopped if name in e.get("stages_ms", {})]
        count = sum(p["count"] for p in per)
        mean = sum(p["mean"] * p["count"] for p in per) / max(count, 1)
        stages.add_row(
            name,
            str(count),
            f"{mean:.3f}",
            f"{max(p['p50'] for p in per):.3f}",
            f"{max(p['p99'] for p in per):.3f}",
        )
    console.print(stages)
