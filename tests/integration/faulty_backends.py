"""Backends for runtime tests, loaded by `packflow run --backend <this file>:<Class>`."""

from __future__ import annotations

import os
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


class Oversize(InferenceBackend):
    """Echoes ids; answers a 2 MB output for ids starting with `huge-` (more than the
    producer's message.max.bytes, 1 MB by default) and a 500 KB one for `medium-` ids
    (random, so that compression cannot shrink it)."""

    name = "oversize"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"id": r["id"], "blob": "x" * 2_000_000}
            if r["id"].startswith("huge-")
            else {"id": r["id"], "blob": os.urandom(250_000).hex()}
            if r["id"].startswith("medium-")
            else {"id": r["id"]}
            for r in inputs
        ]


class SleepyConfig(BackendConfig):
    sleep_s: float = 0.0
    times: int = 1


class Sleepy(InferenceBackend):
    """Echoes ids; a batch holding a `slow-` record sleeps `sleep_s` (the first `times` such
    batches of the process): a model busy long enough for a fault to land meanwhile."""

    backend_config_model = SleepyConfig
    config: SleepyConfig
    name = "sleepy"

    def initialize(self) -> None:
        self.slept = 0

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.slept < self.config.times and any(r["id"].startswith("slow-") for r in inputs):
            self.slept += 1
            self.logger.info("sleeping", seconds=self.config.sleep_s)
            time.sleep(self.config.sleep_s)
        return [{"id": r["id"]} for r in inputs]


class Deadly(InferenceBackend):
    """Sums the features; a batch holding a record whose id starts with `crash-` ends the
    process at once (`os._exit(7)`, as a segfault or the OOM killer would, with no clean-up),
    one holding a `hang-` record sleeps an hour."""

    name = "deadly"
    version = "1"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(r["id"].startswith("crash-") for r in inputs):
            os._exit(7)
        if any(r["id"].startswith("hang-") for r in inputs):
            time.sleep(3600)
        return [{"total": round(sum(r[f"x{i}"] for i in range(16)), 4)} for r in inputs]
