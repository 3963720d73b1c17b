"""Torch backends: where a model runs, and how batches get there and back.

    from packflow.devices import TorchBackend, TorchConfig

    class Backend(TorchBackend):
        def initialize(self):
            self.model = self.placement.module(MyModel())   # eval, on the device

        def transform_inputs(self, features):               # numpy, on the host
            return self.placement.to_device(features)       # pinned, non-blocking copy

        def execute(self, x):
            return self.model(x)                            # under torch.inference_mode

        def transform_outputs(self, y):
            return [{"score": s} for s in self.placement.to_host(y).tolist()]

`TorchConfig` adds three fields to a backend's config: `device` (`auto`: `cuda` when
available, else `cpu`; or any torch device string), `half_precision` (float16 weights and
inputs, on CUDA only: half matmuls on a CPU are slow and inexact) and `pin_memory` (stage
host-to-device copies in pinned memory, so that they are asynchronous; CUDA only).

Every stage of a `TorchBackend` runs under `torch.inference_mode()`. Its host stages
(preprocess, transform_inputs) and device stages (execute, transform_outputs) are the
`prepare`/`complete` halves of `InferenceBackend.run_batch`, which `packflow run --overlap`
runs on two threads: the next batch is decoded and prepared on the host while the current
one runs on the device.

torch is imported only here, so the rest of the SDK works without it (the `torch` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from packflow.backend import BatchResult, InferenceBackend, PreparedBatch
from packflow.config import BackendConfig, Field
from packflow.errors import BackendError

__all__ = ["Placement", "TorchBackend", "TorchConfig", "load_state_dict", "pick_device"]


class TorchConfig(BackendConfig):
    """A torch backend's device settings, on top of `BackendConfig`'s."""

    device: str = Field("auto", min_length=1)
    half_precision: bool = False
    pin_memory: bool = True


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: the first CUDA device when there is one, else the CPU; otherwise `name` as
    torch reads it (`cpu`, `cuda`, `cuda:1`, `mps`). An unusable device is an error here, at
    start-up, rather than at the first batch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA devices")
    return device


@dataclass(frozen=True)
class Placement:
    """The device, the floating-point dtype on it, and whether host copies are pinned."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    pinned: bool = False

    @classmethod
    def from_config(cls, config: TorchConfig) -> Placement:
        device = pick_device(config.device)
        cuda = device.type == "cuda"
        half = config.half_precision and cuda
        return cls(device, torch.float16 if half else torch.float32, config.pin_memory and cuda)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def module(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` in eval mode, on the device, in the placement's dtype."""
        return model.eval().to(device=self.device, dtype=self.dtype)

    def to_device(self, data: np.ndarray[Any, Any] | torch.Tensor) -> torch.Tensor:
        """A host array as a tensor on the device; floating-point data in the placement's
        dtype. From pinned memory the copy is asynchronous: it overlaps whatever the device
        is running, and later work on the same stream sees it complete."""
        tensor = (
            torch.from_numpy(np.ascontiguousarray(data)) if isinstance(data, np.ndarray) else data
        )
        if not self.cuda:
            return tensor.to(self.dtype) if tensor.is_floating_point() else tensor
        if self.pinned and not tensor.is_pinned():
            tensor = tensor.pin_memory()
        tensor = tensor.to(self.device, non_blocking=self.pinned)
        # Cast on the device: half the bytes would cross the bus, but the cast is free there.
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def to_host(self, tensor: torch.Tensor) -> np.ndarray[Any, Any]:
        """A device tensor as a numpy array on the host, floats as float32. Waits for the
        device to produce it (the one synchronisation of a batch)."""
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            tensor = tensor.float()
        if not self.cuda:
            return tensor.detach().cpu().numpy()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=self.pinned)
        host.copy_(tensor, non_blocking=self.pinned)
        if self.pinned:
            torch.cuda.current_stream(self.device).synchronize()
        return host.numpy()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A `torch.save`d state dict, read safely: `weights_only=True` unpickles tensors and
    plain containers only, never code. Loaded on the CPU; `Placement.module` moves it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


class TorchBackend(InferenceBackend):
    """An `InferenceBackend` whose stages run under `torch.inference_mode()`, with
    `self.placement` (device, dtype, pinning) set from its `TorchConfig` before
    `initialize()` runs."""

    backend_config_model = TorchConfig
    config: TorchConfig
    placement: Placement

    def prepare(self, records: list[dict[str, Any]]) -> PreparedBatch:
        # Grad mode is per thread: the runtime may prepare and complete on two threads.
        with torch.inference_mode():
            return super().prepare(records)

    def complete(self, prepared: PreparedBatch) -> BatchResult:
        with torch.inference_mode():
            return super().complete(prepared)

    def __call__(self, inputs: dict[str, Any] | list[dict[str, Any]]) -> Any:
        with torch.inference_mode():
            return super().__call__(inputs)

    def _initialize(self) -> None:
        try:
            self.placement = Placement.from_config(self.config)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(
                f"{self.name}: {exc}", backend=self.name, stage="initialize"
            ) from exc
        self.logger.info(
            "device_placed",
            device=str(self.placement.device),
            dtype=str(self.placement.dtype).removeprefix("torch."),
            pinned=self.placement.pinned,
        )
        super()._initialize()
