"""Running `packflow run` as real processes against the real broker, for the runtime tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Message

from consumer.codecs import decode_result, make_encoder
from consumer.contracts import load_schema
from consumer.generate import synthetic_records
from tests.kafka_io import produce

PACKFLOW = str(Path(sys.executable).parent / "packflow")


@dataclass(frozen=True)
class Pipeline:
    bootstrap: str
    input: str
    results: str
    dead_letters: str
    group: str

    def flags(self) -> list[str]:
        return [
            "--bootstrap-servers",
            self.bootstrap,
            "--input-topic",
            self.input,
            "--results-topic",
            self.results,
            "--dead-letter-topic",
            self.dead_letters,
            "--group-id",
            self.group,
        ]


def make_pipeline(bootstrap: str, make_topic: Callable[..., str], partitions: int = 6) -> Pipeline:
    return Pipeline(
        bootstrap,
        make_topic(partitions),
        make_topic(partitions, **{"cleanup.policy": "compact"}),
        make_topic(partitions),
        f"group-{uuid.uuid4().hex[:8]}",
    )


class Run:
    """`packflow run ...` in a subprocess, its JSON log lines in a file."""

    def __init__(
        self, pipeline: Pipeline, log: Path, *args: str, env: dict[str, str] | None = None
    ):
        self.log = log
        environment = dict(os.environ, PACKFLOW_LOG_FORMAT="json", **(env or {}))
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [PACKFLOW, "run", *pipeline.flags(), *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=environment,
            )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_bytes().splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # librdkafka or Java noise
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def _until(self, done: Callable[[], bool], what: Callable[[], str], timeout: float) -> None:
        """Poll `done` until it holds; fails with `what` after `timeout`, or if the run ends."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what()} in {timeout}s:\n{self.log.read_text()[-3000:]}")
            assert self.proc.poll() is None, (
                f"packflow run exited early:\n{self.log.read_text()[-3000:]}"
            )
            time.sleep(0.2)

    def wait_for(self, name: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        self._until(
            lambda: len(self.events(name)) >= count, lambda: f"no {count} {name!r} events", timeout
        )
        return self.events(name)

    def wait_for_replicas(self, replicas: int, timeout: float = 90) -> None:
        """Until each of `replicas` replicas has been given partitions at least once."""

        def assigned() -> set[int]:
            return {e["replica"] for e in self.events("partitions_assigned") if e["partitions"]}

        self._until(
            lambda: len(assigned()) >= replicas,
            lambda: f"only replicas {sorted(assigned())} got partitions",
            timeout,
        )

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (the test fails if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(
                f"no exit {timeout}s after SIGTERM:\n{self.log.read_text()[-3000:]}"
            )


def demo_records(count: int, start: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    return list(synthetic_records(load_schema("demo_input"), count, start=start, seed=seed))


def produce_records(
    pipeline: Pipeline, records: list[dict[str, Any]], codec: str = "schemaless"
) -> None:
    encoder = make_encoder(codec, "demo_input")
    produce(
        pipeline.bootstrap,
        pipeline.input,
        [(r["id"].encode(), encoder.encode(r)) for r in records],
    )


def results_by_key(messages: list[Message]) -> dict[str, list[dict[str, Any]]]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_key.setdefault((m.key() or b"").decode(), []).append(
            decode_result(m.value() or b"", "json")
        )
    return by_key
