"""The shipped backends: echo and logistic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from packflow import BackendError, ConfigError, PreprocessError
from packflow.examples.echo import EchoBackend
from packflow.examples.logistic import LogisticBackend
from packflow.loaders import InferenceBackendLoader
from packflow.samples import read_records
from packflow.testing import assert_outputs

BACKENDS = Path(__file__).resolve().parents[3] / "backends"


def test_echo_returns_its_inputs() -> None:
    records = list(read_records(BACKENDS / "echo" / "sample.jsonl"))
    backend = EchoBackend()
    assert backend.check_io(records) == records
    assert (backend.name, backend.version, backend.config.input_format) == (
        "echo",
        "1",
        "passthrough",
    )


def test_echo_project_loads() -> None:
    backend = InferenceBackendLoader.from_project(BACKENDS / "echo")
    assert backend({"k": [1, {"v": None}]}) == {"k": [1, {"v": None}]}


def logistic_reference(
    records: list[dict[str, float]], threshold: float
) -> list[dict[str, object]]:
    params = json.loads((BACKENDS / "logistic" / "weights.json").read_text())
    x = np.array([[r[f"x{i}"] for i in range(16)] for r in records])
    scores = 1.0 / (1.0 + np.exp(-(x @ np.array(params["weights"]) + params["bias"])))
    return [{"score": s, "label": int(s >= threshold)} for s in scores.tolist()]


def test_logistic_scores_the_sample_like_the_textbook_formula() -> None:
    records = list(read_records(BACKENDS / "logistic" / "sample.jsonl"))
    outputs = LogisticBackend().check_io(records)
    expected = logistic_reference(records, 0.5)
    assert [o["label"] for o in outputs] == [1, 0, 0, 1, 1, 0]
    assert [o["label"] for o in outputs] == [e["label"] for e in expected]
    for got, want in zip(outputs, expected, strict=True):
        assert got["score"] == pytest.approx(want["score"], rel=1e-12)


def test_logistic_scores_do_not_depend_on_batching() -> None:
    rng = np.random.default_rng(3)
    records = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in rng.normal(size=(300, 16))]
    backend = LogisticBackend()
    whole = backend(records)
    assert [backend(r) for r in records] == whole
    assert [out for i in range(0, 300, 7) for out in backend(records[i : i + 7])] == whole
    assert LogisticBackend()(records) == whole


def test_logistic_threshold_from_project_and_keyword() -> None:
    records = list(read_records(BACKENDS / "logistic" / "sample.jsonl"))
    backend = InferenceBackendLoader.from_project(BACKENDS / "logistic", threshold=0.3)
    scores = [o["score"] for o in LogisticBackend()(records)]
    assert_outputs(backend, records, [{"score": s, "label": int(s >= 0.3)} for s in scores])
    assert [int(s >= 0.3) for s in scores] == [1, 0, 0, 1, 1, 1]
    assert backend.version == "1"


def test_logistic_invalid_threshold_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        LogisticBackend(threshold=1.5)
    assert info.value.fields == ("threshold",)
    assert "Input should be less than or equal to 1" in str(info.value)


def test_logistic_missing_feature_names_record_and_field() -> None:
    record = {f"x{i}": 0.1 for i in range(16)}
    broken = {k: v for k, v in record.items() if k != "x7"}
    with pytest.raises(PreprocessError) as info:
        LogisticBackend()([record, broken])
    assert str(info.value) == "record 1: has no field 'x7'"


def test_logistic_weights_must_match_the_features(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as info:
        LogisticBackend(feature_names=["x0", "x1"])
    assert info.value.stage == "initialize"
    assert "holds 16 weights for 2 feature_names" in str(info.value)
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": [2.0, -1.0], "bias": 0.0}))
    small = LogisticBackend(feature_names=["x0", "x1"], weights_path=str(weights))
    assert small({"x0": 1.0, "x1": 2.0}) == {"score": 0.5, "label": 1}
