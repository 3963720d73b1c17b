"""`packflow demo`: the whole path on one machine, start to finish.

Starts the local broker (unless one is running), creates fresh topics, starts replicas of the
logistic backend, produces demo records once every replica holds partitions, waits until every
result is in, prints a summary and a few results, and stops what it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from consumer.broker import BrokerSettings, LocalCluster
from consumer.cli.produce import produce_records
from consumer.codecs import decode_result
from consumer.contracts import load_schema
from consumer.generate import synthetic_records
from consumer.results import read_topic
from consumer.settings import load_settings
from consumer.topics import create_topics, pipeline_topics

BACKEND = "backends.logistic:Backend"


def demo(
    records: Annotated[int, typer.Option(min=1, help="demo records to produce")] = 20_000,
    replicas: Annotated[int, typer.Option(min=1, help="replica processes")] = 2,
    partitions: Annotated[int, typer.Option(min=1)] = 6,
    timeout: Annotated[float, typer.Option(help="seconds to wait for all results")] = 300,
) -> None:
    """Run the demo on the local broker (`packflow kafka start` settings apply)."""
    console = Console()
    cluster = LocalCluster(BrokerSettings())
    started_broker = not cluster.is_running()
    result = cluster.start()
    console.print(f"Kafka at {result.bootstrap}" + (" (started)" if started_broker else ""))
    run: subprocess.Popen[bytes] | None = None
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        names = [f"packflow.demo-{stamp}.{kind}" for kind in ("input", "results", "dead-letter")]
        create_topics(
            result.bootstrap, pipeline_topics(names[0], names[1], names[2], partitions, 1)
        )
        settings = load_settings(
            bootstrap_servers=result.bootstrap,
            input_topic=names[0],
            results_topic=names[1],
            dead_letter_topic=names[2],
            group_id=f"packflow-demo-{stamp}",
            backend=BACKEND,
            replicas=replicas,
        )
        log = Path(tempfile.mkdtemp(prefix="packflow-demo-")) / "replicas.log"
        run = _start_replicas(settings.model_dump(mode="json"), log)
        console.print(f"running {replicas} replicas of {BACKEND} (logs: {log})")
        # Every replica in the group before the first record, so that they share the work.
        _await_replicas(log, replicas, run, timeout)
        sent = produce_records(
            settings,
            synthetic_records(load_schema(settings.input_schema), records),
            total=records,
            progress=True,
        )
        console.print(f"produced {sent} records to {names[0]}")
        seen, first, last, sample = _await_results(result.bootstrap, names[1], sent, timeout)
        code = _stop(run)
        run = None
        dead = sum(1 for _ in read_topic(result.bootstrap, names[2], timeout_s=10))
        _summary(console, sent, seen, dead, first, last, _events(log, "replica_stopped"), code)
        for item in sample:
            typer.echo(orjson.dumps(item).decode())
    finally:
        if run is not None:
            _stop(run)
        if started_broker:
            cluster.stop()
            console.print("stopped the broker the demo started")


def _start_replicas(settings: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
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
    env = dict(os.environ, PACKFLOW_LOG_FORMAT="json")
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "consumer.cli", "run", *flags], stderr=err, env=env
        )


def _await_replicas(log: Path, count: int, run: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        holding = {e["replica"] for e in _events(log, "partitions_assigned") if e["partitions"]}
        if len(holding) >= count:
            return
        time.sleep(0.2)


def _await_results(
    bootstrap: str, topic: str, expected: int, timeout: float
) -> tuple[int, float, float, list[dict[str, Any]]]:
    keys: set[bytes] = set()
    sample: list[dict[str, Any]] = []
    first = last = 0.0
    deadline = time.monotonic() + timeout
    for message in read_topic(bootstrap, topic, follow=True):
        # When each result was produced (its timestamp), not when this reader got to it.
        at = message.timestamp()[1] / 1000
        first = min(first, at) if first else at
        last = max(last, at)
        now = time.monotonic()
        keys.add(message.key() or b"")
        if len(sample) < 5:
            sample.append(decode_result(message.value() or b"", "json"))
        if len(keys) >= expected or now > deadline:
            break
    return len(keys), first, last, sample


def _stop(run: subprocess.Popen[bytes]) -> int:
    run.send_signal(signal.SIGTERM)
    try:
        return run.wait(60)
    except subprocess.TimeoutExpired:
        run.kill()
        return run.wait()


def _events(log: Path, name: str) -> list[dict[str, Any]]:
    events = []
    for line in log.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            events.append(event)
    return events


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
