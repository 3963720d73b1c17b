"""Backends for runtime tests, loaded by `packflow run --backend <this file>:<Class>`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from packflow import BackendConfig, InferenceBackend


class Poisoned(InferenceBackend):
    """Sums the features. Raises when a batch holds a record whose id starts with `raise-`;
    answers a numpy value (which fails validation) for ids starting with `numpy-`."""

    name = "poisoned"
    version = "7"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(r["id"].startswith("raise-") for r in inputs):
            raise RuntimeError("model blew up on a raise- record")
        return [
            {"id": r["id"], "total": np.float64(1.5)}
            if r["id"].startswith("numpy-")
            else {"id": r["id"], "total": sum(r[f"x{i}"] for i in range(16))}
            for r in inputs
        ]


class SlowConfig(BackendConfig):
    sleep_s: float = 0.0


class Slow(InferenceBackend):
    """Echoes ids; its first call sleeps `sleep_s` (longer than max.poll.interval.ms)."""

    backend_config_model = SlowConfig
    config: SlowConfig
    name = "slow"

    def initialize(self) -> None:
        self.calls = 0

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.config.sleep_s)
        return [{"id": r["id"]} for r in inputs]


class SlowStart(Poisoned):
    """`Poisoned`, whose initialize() takes 3 s: long enough to see a replica not ready."""

    name = "slow-start"

    def initialize(self) -> None:
        time.sleep(3)


class FixableConfig(BackendConfig):
    broken: bool = True


class Fixable(InferenceBackend):
    """Sums the features; while `broken`, a batch holding a `raise-` record raises (the
    runtime then finds those records one by one and dead-letters them)."""

    backend_config_model = FixableConfig
    config: FixableConfig
    name = "fixable"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.config.broken and any(r["id"].startswith("raise-") for r in inputs):
            raise RuntimeError("not fixed yet")
        return [{"total": round(sum(r[f"x{i}"] for i in range(16)), 4)} for r in inputs]
