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

from packflow.devices import load_state_dict
from packflow.examples.text_embedding import packaged_model_dir
from packflow.examples.torch_mlp.backend import WEIGHTS
from packflow.examples.torch_mlp.model import mlp_for
from packflow.runtime.codecs import make_decoder, make_encoder
from packflow.runtime.contracts import load_schema
from packflow.runtime.generate import synthetic_records
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import PACKFLOW, Run, demo_records, make_pipeline, results_by_key

MLP = "packflow.examples.torch_mlp:Backend"
TEXT_PROJECT = str(Path(__file__).resolve().parents[2] / "backends" / "text_embedding")


def decoded(records: list[dict[str, Any]], schema: str) -> list[dict[str, Any]]:
    """The records as a replica decodes them (Avro floats are float32)."""
    encoder, decoder = make_encoder("schemaless", schema), make_decoder("schemaless", schema)
    return decoder.decode_batch([encoder.encode(r) for r in records])


def run_to_results(
    run: Run, pipeline: Any, records: list[dict[str, Any]], schema: str, replicas: int
) -> dict[str, list[dict[str, Any]]]:
    """Produce the records once all replicas hold partitions; one result per record, and
    the backend initialised once in each replica."""
    encoder, bootstrap = make_encoder("schemaless", schema), pipeline.bootstrap
    messages = [(r["id"].encode(), encoder.encode(r)) for r in records]
    try:
        run.wait_for_replicas(replicas)
        produce(bootstrap, pipeline.input, messages)
        got = collect(bootstrap, pipeline.results, distinct_keys(len(messages)), timeout=240)
    finally:
        code = run.terminate()
    assert code == 0
    by_key = results_by_key(got)
    assert len(got) == len(messages)  # one result per record, none repeated
    assert sorted(by_key) == sorted(r["id"] for r in records)
    initialized_once_per_replica(run, replicas)
    return by_key


def mlp_direct(features: np.ndarray) -> np.ndarray:
    """The MLP's probabilities, the model called directly on the CPU in one batch."""
    model = mlp_for(load_state_dict(WEIGHTS)).eval()
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(features.astype(np.float32))), dim=1).numpy()


def embeddings_direct(texts: list[str]) -> np.ndarray:
    """The reference: sentence-transformers' own encode of the same packaged model."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu")
    return reference.encode(texts, normalize_embeddings=True, batch_size=256)


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
    by_key = run_to_results(run, pipeline, records, "demo_input", replicas=2)

    rows = decoded(records, "demo_input")
    expected = mlp_direct(np.array([[row[f"x{i}"] for i in range(16)] for row in rows]))
    got = np.array([by_key[r["id"]][0]["output"]["probabilities"] for r in records])
    labels = [by_key[r["id"]][0]["output"]["label"] for r in records]
    assert {by_key[r["id"]][0]["backend"] for r in records} == {"torch-mlp"}
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert labels == expected.argmax(axis=1).tolist()


def test_text_embeddings_through_kafka_equal_sentence_transformers(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
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
    by_key = run_to_results(run, pipeline, records, "text_input", replicas=2)

    expected = embeddings_direct([r["text"] for r in records])
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
        expected = mlp_direct(np.array([[r[f"x{i}"] for i in range(16)] for r in rows]))
        got = np.array([o["probabilities"] for o in outputs])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    else:
        expected = embeddings_direct([r["text"] for r in rows])
        got = np.array([o["embedding"] for o in outputs])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
