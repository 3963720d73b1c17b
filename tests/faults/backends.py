"""A backend that fails intermittently, for `packflow run --backend <this file>:Flaky`."""

from __future__ import annotations

import random
from typing import Any

from packflow import InferenceBackend


class Flaky(InferenceBackend):
    """Sums the features; one call in five raises, whatever the records (a flaky model
    server, say). A failing batch is retried record by record; a record whose lone call
    fails too becomes a dead letter."""

    name = "flaky"

    def initialize(self) -> None:
        self.random = random.Random()

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.random.random() < 0.2:
            raise ConnectionError("model server hiccup")
        return [{"total": sum(r[f"x{i}"] for i in range(16))} for r in inputs]
