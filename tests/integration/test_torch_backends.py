"""The torch backends through Kafka (CPU): each record's result equals what the same model
gives when called directly, with and without `--overlap`, and `initialize()` runs once per
replica.

Tolerances: a float32 model's outputs for a record can change in their last bits with the
batch it is computed in (BLAS blocks a matrix product by its shape; padding follows the
batch's longest text), and the runtime batches records as they come. Outputs must agree with
the direct call within 1e-6 (MLP probabilities) and 1e-5 (embedding components, which the
backend rounds to 6 decimals).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backends.text_embedding import packaged_model_dir
from backends.torch_mlp.backend import WEIGHTS
from backends.torch_mlp.model import mlp_for
from consumer.codecs import make_decoder, make_encoder
from consumer.contracts import load_schema
from consumer.generate import synthetic_records
from packflow.devices import load_state_dict
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import PACKFLOW, Run, demo_records, make_pipeline, results_by_key

MLP = "backends.torch_mlp:Backend"
TEXT_PROJECT = str(Path(__file__).resolve().parents[2] / "backends" / "text_embedding")


def decoded(records: list[dict[str, Any]], schema: str) -> list[dict[str, Any]]:
    """The records as a replica decodes them (Avro floats are float32)."""
    encoder, decoder = make_encoder("schemaless", schema), make_decoder("schemaless", schema)
    return decoder.decode_batch([encoder.encode(r) for r in records])


def run_to_results(
    run: Run, pipeline: Any, bootstrap: str, messages: list[tuple[bytes, bytes]], replicas: int
) -> dict[str, list[dict[str, Any]]]:
    try:
        run.wait_for_replicas(replicas)
        produce(bootstrap, pipeline.input, messages)
        got = collect(bootstrap, pipeline.results, distinct_keys(len(messages)), timeout=240)
    finally:
        code = run.terminate()
    assert code == 0
    by_key = results_by_key(got)
    assert len(got) == len(messages)  # one result per record, none repeated
    return by_key


def initialized_once_per_replica(run: Run, replicas: int) -> None:
    started = {e["pid"] for e in run.events("replica_started")}
    initialized = [e["pid"] for e in run.events("backend_initialized")]
    assert len(started) == replicas
    assert sorted(initialized) == sorted(started)  # once in each replica's process


@pytest.mark.parametrize("overlap", ["--no-overlap", "--overlap"])
def test_torch_mlp_through_kafka_equals_the_model_called_directly(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, overlap: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    records = demo_records(20_000, seed=7)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        MLP,
        "--replicas",
        "2",
        "--max-batch-size",
        "512",
        overlap,
    )
    encoder = make_encoder("schemaless", "demo_input")
    by_key = run_to_results(
        run,
        pipeline,
        kafka_bootstrap,
        [(r["id"].encode(), encoder.encode(r)) for r in records],
        replicas=2,
    )
    initialized_once_per_replica(run, 2)

    model = mlp_for(load_state_dict(WEIGHTS)).eval()
    rows = decoded(records, "demo_input")
    features = np.array([[row[f"x{i}"] for i in range(16)] for row in rows], dtype=np.float32)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(features)), dim=1).numpy()

    got = np.array([by_key[r["id"]][0]["output"]["probabilities"] for r in records])
    labels = [by_key[r["id"]][0]["output"]["label"] for r in records]
    assert sorted(by_key) == sorted(r["id"] for r in records)
    assert {by_key[r["id"]][0]["backend"] for r in records} == {"torch-mlp"}
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert labels == expected.argmax(axis=1).tolist()


def test_text_embeddings_through_kafka_equal_sentence_transformers(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    records = list(synthetic_records(load_schema("text_input"), 1500, seed=3, id_prefix="text-"))
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--project",
        TEXT_PROJECT,
        "--replicas",
        "2",
        "--max-batch-size",
        "128",
        "--overlap",
        env={"HF_HUB_OFFLINE": "1"},
    )
    encoder = make_encoder("schemaless", "text_input")
    by_key = run_to_results(
        run,
        pipeline,
        kafka_bootstrap,
        [(r["id"].encode(), encoder.encode(r)) for r in records],
        replicas=2,
    )
    initialized_once_per_replica(run, 2)

    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu")
    expected = reference.encode(
        [r["text"] for r in records], normalize_embeddings=True, batch_size=256
    )
    got = np.array([by_key[r["id"]][0]["output"]["embedding"] for r in records])
    assert got.shape == (1500, 384)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("project", ["torch_mlp", "text_embedding"])
def test_packflow_check_runs_each_torch_backend_offline(project: str) -> None:
    directory = Path(TEXT_PROJECT).parent / project
    sample = directory / "sample.jsonl"
    checked = subprocess.run(
        [PACKFLOW, "check", str(directory), "--input", str(sample)],
        capture_output=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    outputs = [json.loads(line) for line in checked.stdout.splitlines()]
    rows = [json.loads(line) for line in sample.read_text().splitlines()]
    assert len(outputs) == len(rows) == 6
    if project == "torch_mlp":
        model = mlp_for(load_state_dict(WEIGHTS)).eval()
        x = torch.tensor([[r[f"x{i}"] for i in range(16)] for r in rows], dtype=torch.float32)
        with torch.inference_mode():
            expected = torch.softmax(model(x), dim=1).numpy()
        got = np.array([o["probabilities"] for o in outputs])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    else:
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(str(packaged_model_dir()), device="cpu")
        expected = reference.encode([r["text"] for r in rows], normalize_embeddings=True)
        got = np.array([o["embedding"] for o in outputs])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
