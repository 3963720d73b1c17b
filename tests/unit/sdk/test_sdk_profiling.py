"""Profiler statistics, and the timings a backend records."""

from __future__ import annotations

from typing import Any

import pytest

from packflow import BackendError, InferenceBackend, Profiler, StageStats


def test_stats_count_mean_and_percentiles() -> None:
    profiler = Profiler()
    for ms in range(1, 101):  # 1..100 ms
        profiler.record({"execute": ms / 1000})
    stats = profiler.stats()["execute"]
    assert stats.count == 100
    assert stats.total_s == pytest.approx(5.05)
    assert stats.mean_s == pytest.approx(0.0505)
    assert stats.p50_s == pytest.approx(0.0505)
    assert stats.p99_s == pytest.approx(0.09901)


def test_window_bounds_the_percentiles_not_the_count_or_mean() -> None:
    profiler = Profiler(window=4)
    for seconds in (100.0, 1.0, 1.0, 1.0, 1.0):
        profiler.record({"execute": seconds})
    assert profiler.stats()["execute"] == StageStats(
        count=5, total_s=104.0, mean_s=20.8, p50_s=1.0, p99_s=1.0
    )


def test_stats_in_pipeline_order_and_last_call() -> None:
    profiler = Profiler()
    profiler.record({"total": 3.0, "execute": 2.0, "custom": 0.5, "preprocess": 1.0})
    profiler.record({"execute": 4.0})
    assert list(profiler.stats()) == ["preprocess", "execute", "total", "custom"]
    assert profiler.last == {"execute": 4.0}
    profiler.reset()
    assert profiler.stats() == {}
    assert profiler.last == {}


def test_window_must_hold_something() -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        Profiler(window=0)


class Doubler(InferenceBackend):
    def transform_outputs(self, outputs: Any) -> Any:
        return [{"y": row["x"] * 2} for row in outputs]

    def execute(self, inputs: Any) -> Any:
        return inputs


def test_backend_records_each_stage_per_call() -> None:
    backend = Doubler()
    for _ in range(3):
        backend([{"x": 1}])
    backend.run_batch([{"x": 1}, {"x": 2}])
    counts = {stage: s.count for stage, s in backend.profiler.stats().items()}
    assert counts == {
        "preprocess": 4,
        "execute": 4,
        "transform_outputs": 4,
        "validate": 1,
        "total": 4,
    }
    stats = backend.profiler.stats()["total"]
    assert 0 < stats.p50_s <= stats.p99_s


def test_get_metrics_describes_the_last_call_in_ms() -> None:
    backend = Doubler()
    backend.run_batch([{"x": 1}, {"x": 2}, {"x": 3}])
    metrics = backend.get_metrics()
    assert metrics.batch_size == 3
    assert list(metrics.execution_times) == [
        "preprocess",
        "execute",
        "transform_outputs",
        "validate",
    ]
    assert metrics.execution_times["execute"] == pytest.approx(
        backend.profiler.last["execute"] * 1000
    )
    assert metrics.total_execution_time >= sum(metrics.execution_times.values())


def test_a_failed_call_records_nothing() -> None:
    class Fails(InferenceBackend):
        def execute(self, inputs: Any) -> Any:
            raise RuntimeError("boom")

    backend = Fails()
    with pytest.raises(BackendError):
        backend([{"x": 1}])
    assert backend.profiler.stats() == {}
