"""Backends written for upstream Packflow, run unchanged by `packflow run` on the real broker:
the example notebooks' backends (our own rewrites, tests/unit/sdk/test_upstream_docs.py), and
the rule upstream lacks: a NaN or infinite output is a dead letter naming the field."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from packflow.runtime.codecs import make_decoder, make_encoder
from packflow.runtime.headers import read_packflow_headers
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import PACKFLOW, Pipeline, Run, demo_records, make_pipeline, produce_records
from tests.unit.sdk.test_upstream_docs import NOTEBOOK_101, SKLEARN

pytestmark = pytest.mark.broker

# The inference-backend-101 notebook's last backend, as the notebook writes it (the same
# text the SDK's notebook test runs).
FULL_BACKEND = (
    "from packflow import InferenceBackend\n\n\n"
    + NOTEBOOK_101[
        NOTEBOOK_101.index("class FullBackend") : NOTEBOOK_101.index('samples = [{"number": i}')
    ]
)

NUMBERS_SCHEMA = {
    "type": "record",
    "name": "Numbers",
    "namespace": "tests.upstream",
    "fields": [{"name": "id", "type": "string"}, {"name": "number", "type": "long"}],
}

NAN_BACKEND = """
import math

from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [
            {"half": math.nan if row["number"] % 10 == 7 else row["number"] / 2,
             "ratio": math.inf if row["number"] % 10 == 3 else 1.0}
            for row in inputs
        ]
"""


def numbers(tmp_path: Path, count: int) -> tuple[Path, list[dict]]:
    schema = tmp_path / "numbers.avsc"
    schema.write_text(json.dumps(NUMBERS_SCHEMA))
    return schema, [{"id": f"n-{i}", "number": i} for i in range(count)]


def produce_numbers(pipeline: Pipeline, schema: Path, records: list[dict]) -> None:
    encoder = make_encoder("schemaless", str(schema))
    produce(
        pipeline.bootstrap,
        pipeline.input,
        [(r["id"].encode(), encoder.encode(r)) for r in records],
    )


def run_until(
    pipeline: Pipeline, log: Path, args: list[str], produce_all: Callable[[], None], expected: int
) -> tuple[dict[str, dict], int]:
    run = Run(pipeline, log, *args)
    try:
        run.wait_for_replicas(1)
        produce_all()
        got = collect(pipeline.bootstrap, pipeline.results, distinct_keys(expected), timeout=120)
    finally:
        code = run.terminate()
    by_key = {(m.key() or b"").decode(): orjson.loads(m.value() or b"") for m in got}
    assert len(got) == len(by_key)  # one result per key
    return by_key, code


def test_the_notebooks_full_backend_answers_every_record(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    (tmp_path / "full.py").write_text(FULL_BACKEND)
    schema, records = numbers(tmp_path, 500)
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    args = ["--backend", f"{tmp_path / 'full.py'}:FullBackend", "--input-schema", str(schema)]
    by_key, code = run_until(
        pipeline,
        tmp_path / "run.log",
        args,
        lambda: produce_numbers(pipeline, schema, records),
        500,
    )
    assert code == 0
    assert sorted(by_key) == sorted(r["id"] for r in records)
    for record in records:
        assert by_key[record["id"]]["output"] == {"doubled": 2 * record["number"], "is_even": True}


def test_the_sklearn_notebooks_backend_answers_as_check_does(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    (tmp_path / "sklearn_inference.py").write_text(SKLEARN)
    config = ["--config", "input_format=numpy", "--config", "feature_names=[x0, x1, x2, x3]"]
    records = demo_records(400)
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    reference = f"{tmp_path / 'sklearn_inference.py'}:Backend"
    by_key, code = run_until(
        pipeline,
        tmp_path / "run.log",
        ["--backend", reference, *config],
        lambda: produce_records(pipeline, records),
        400,
    )
    assert code == 0
    # What `packflow check` computes for the records as the replica decodes them.
    decoder, encoder = (
        make_decoder("schemaless", "demo_input"),
        make_encoder("schemaless", "demo_input"),
    )
    decoded = decoder.decode_batch([encoder.encode(r) for r in records])
    sample = tmp_path / "decoded.jsonl"
    sample.write_bytes(b"\n".join(orjson.dumps(d) for d in decoded))
    checked = subprocess.run(
        [PACKFLOW, "check", reference, "--input", str(sample), *config],
        capture_output=True,
        check=True,
    )
    expected = [orjson.loads(line) for line in checked.stdout.splitlines()]
    assert len(expected) == 400
    assert {o["class"] for o in expected} <= {0, 1, 2}
    for record, output in zip(records, expected, strict=True):
        assert by_key[record["id"]]["output"] == output


def test_nan_and_infinite_outputs_are_dead_letters_naming_the_field(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    (tmp_path / "nan.py").write_text(NAN_BACKEND)
    schema, records = numbers(tmp_path, 300)
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    bad = {r["id"]: r["number"] for r in records if r["number"] % 10 in (3, 7)}
    good = 300 - len(bad)
    args = ["--backend", f"{tmp_path / 'nan.py'}:Backend", "--input-schema", str(schema)]
    by_key, code = run_until(
        pipeline,
        tmp_path / "run.log",
        args,
        lambda: produce_numbers(pipeline, schema, records),
        good,
    )
    assert code == 0
    assert sorted(by_key) == sorted(r["id"] for r in records if r["id"] not in bad)
    for key, result in by_key.items():
        n = int(key.removeprefix("n-"))
        assert result["output"] == {"half": n / 2, "ratio": 1.0}
    dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(len(bad)), timeout=60)
    assert sorted((m.key() or b"").decode() for m in dead) == sorted(bad)
    for message in dead:
        headers = read_packflow_headers(message.headers())
        n = bad[(message.key() or b"").decode()]
        assert headers["stage"] == "validate", headers
        assert "finite_number" in headers["error.message"], headers
        assert ("half" if n % 10 == 7 else "ratio") in headers["error.message"], headers
