"""Running `packflow run` as real processes against the real broker, for the runtime tests."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from packflow.runtime.codecs import decode_result, make_encoder
from packflow.runtime.contracts import load_schema
from packflow.runtime.generate import synthetic_records
from packflow.runtime.processes import ReplicaProcess, packflow_command
from tests.kafka_io import produce

PACKFLOW = packflow_command()[0]


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


class Run(ReplicaProcess):
    """`packflow run` on a test pipeline (the runtime's own harness: packflow.runtime.processes)."""

    def __init__(
        self,
        pipeline: Pipeline,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        super().__init__([*pipeline.flags(), *args], log, env=env, cwd=cwd)


def endpoint(port: int, path: str) -> tuple[int, str]:
    """HTTP status and body of a replica's endpoint (`/readyz`, `/metrics`) on loopback."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def demo_records(count: int, start: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    return list(synthetic_records(load_schema("demo_input"), count, start=start, seed=seed))


def produce_records(
    pipeline: Pipeline,
    records: list[dict[str, Any]],
    codec: str = "schemaless",
    config: Mapping[str, Any] | None = None,
) -> None:
    """`config`: more librdkafka settings of the producer (security)."""
    encoder = make_encoder(codec, "demo_input")
    produce(
        pipeline.bootstrap,
        pipeline.input,
        [(r["id"].encode(), encoder.encode(r)) for r in records],
        **(config or {}),
    )


def results_by_key(messages: list[Message]) -> dict[str, list[dict[str, Any]]]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_key.setdefault((m.key() or b"").decode(), []).append(
            decode_result(m.value() or b"", "json")
        )
    return by_key
