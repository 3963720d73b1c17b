"""LogisticBackend: numpy logistic regression over a feature array.

The weights are fixed (`weights.json` beside this file, drawn once from a seeded generator)
so that the same record always gets the same score, on every replica.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from packflow import BackendConfig, InferenceBackend
from packflow.config import Field

WEIGHTS = Path(__file__).with_name("weights.json")


class LogisticConfig(BackendConfig):
    """The demo input's 16 features as a numpy array, and the decision threshold."""

    input_format: str = "numpy"
    feature_names: list[str] = Field(default_factory=lambda: [f"x{i}" for i in range(16)])
    output_keys: list[str] = Field(default_factory=lambda: ["score", "label"])
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    weights_path: Path = WEIGHTS


class LogisticBackend(InferenceBackend):
    """`score` = sigmoid(x . w + b) and `label` = 1 when the score reaches the threshold."""

    backend_config_model = LogisticConfig
    config: LogisticConfig
    name = "logistic"
    version = "1"

    def initialize(self) -> None:
        params = json.loads(self.config.weights_path.read_text())
        weights = np.asarray(params["weights"], dtype=np.float64)
        if weights.shape != (len(self.config.feature_names),):
            raise ValueError(
                f"{self.config.weights_path} holds {weights.size} weights for "
                f"{len(self.config.feature_names)} feature_names"
            )
        self.weights = weights
        self.bias = float(params["bias"])
        self.logger.info("weights_loaded", path=str(self.config.weights_path), n=weights.size)

    def execute(self, inputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        # einsum, not `@`: BLAS sums in an order that depends on the batch's shape, so a
        # record's score would change in its last bits with its batch-mates. Results must be
        # the same however records are batched (they are keyed and compacted downstream).
        z = np.einsum("ij,j->i", inputs, self.weights) + self.bias
        # The tanh form of the sigmoid: no overflow for large |z|.
        scores: np.ndarray[Any, Any] = 0.5 * (1.0 + np.tanh(0.5 * z))
        return scores

    def transform_outputs(self, scores: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
        labels = (scores >= self.config.threshold).astype(np.int64).tolist()
        return [{"score": s, "label": y} for s, y in zip(scores.tolist(), labels, strict=True)]
