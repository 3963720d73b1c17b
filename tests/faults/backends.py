"""Backends for the fault suite, loaded by `packflow run --backend <this file>:<Class>`."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from packflow import BackendConfig, InferenceBackend


class Flaky(InferenceBackend):
    """Sums the features; one call in five raises, whatever the records (a flaky model
    server, say). A failing batch is retried with backoff, then split and each record
    retried likewise; a record whose calls all fail becomes a dead letter."""

    name = "flaky"

    def initialize(self) -> None:
        self.random = random.Random()

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.random.random() < 0.2:
            raise ConnectionError("model server hiccup")
        return [{"total": sum(r[f"x{i}"] for i in range(16))} for r in inputs]


class GatedConfig(BackendConfig):
    gate: str = ""


class Gated(InferenceBackend):
    """Sums the features, once the file `gate` is gone: while it exists every batch waits, so
    a test knows that work is in flight (read, not yet answered) when it lands a fault."""

    backend_config_model = GatedConfig
    config: GatedConfig
    name = "gated"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        while self.config.gate and Path(self.config.gate).exists():
            time.sleep(0.05)
        return [{"total": sum(r[f"x{i}"] for i in range(16))} for r in inputs]
