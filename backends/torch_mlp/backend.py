"""TorchMLPBackend: a small torch MLP classifier over the demo input's 16 features.

The weights (`weights.pt` beside this file) come from `make_weights.py`: a state dict saved
with `torch.save`, loaded here with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from packflow.config import Field
from packflow.devices import TorchBackend, TorchConfig, load_state_dict
from packflow.examples.torch_mlp.model import mlp_for

WEIGHTS = Path(__file__).with_name("weights.pt")


class TorchMLPConfig(TorchConfig):
    """The demo features as one numpy array per batch, and where the weights are."""

    input_format: str = "numpy"
    feature_names: list[str] = Field(default_factory=lambda: [f"x{i}" for i in range(16)])
    output_keys: list[str] = Field(default_factory=lambda: ["label", "probabilities"])
    weights_path: Path = WEIGHTS


class TorchMLPBackend(TorchBackend):
    """`probabilities`: softmax over the classes; `label`: the most probable class."""

    backend_config_model = TorchMLPConfig
    config: TorchMLPConfig
    name = "torch-mlp"
    version = "1"

    def initialize(self) -> None:
        model = mlp_for(load_state_dict(self.config.weights_path))
        features = model[0].in_features
        if features != len(self.config.feature_names):
            raise ValueError(
                f"{self.config.weights_path} takes {features} features; "
                f"feature_names lists {len(self.config.feature_names)}"
            )
        self.model = self.placement.module(model)
        self.logger.info("weights_loaded", path=str(self.config.weights_path), features=features)

    def transform_inputs(self, features: np.ndarray[Any, Any]) -> torch.Tensor:
        return self.placement.to_device(features)

    def execute(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)

    def transform_outputs(self, probabilities: torch.Tensor) -> list[dict[str, Any]]:
        p = self.placement.to_host(probabilities)
        labels = p.argmax(axis=1).tolist()
        return [
            {"label": y, "probabilities": row} for y, row in zip(labels, p.tolist(), strict=True)
        ]
