"""Per-stage wall-time statistics of a backend's pipeline.

Every call of a backend records how long each stage took. A `Profiler` keeps, per stage, the
exact count and mean over all calls and a sliding window of the most recent timings from
which the p50 and p99 are computed on demand, so memory stays bounded however long a
replica runs. Recording is a few attribute updates (it is on the hot path); reading the
percentiles sorts the window, which is for metrics scrapes and summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The stages, in pipeline order. `total` is one whole call, validation included.
STAGES = ("preprocess", "transform_inputs", "execute", "transform_outputs", "validate", "total")

DEFAULT_WINDOW = 2048


@dataclass(frozen=True, slots=True)
class StageStats:
    """Wall-time statistics of one stage, in seconds: count and mean over every call, and the
    p50 and p99 of the most recent `window` calls."""

    count: int
    total_s: float
    mean_s: float
    p50_s: float
    p99_s: float


class _Series:
    """Exact count and sum, plus a ring buffer of the latest timings."""

    __slots__ = ("_window", "count", "total")

    def __init__(self, window: int) -> None:
        self.count = 0
        self.total = 0.0
        self._window = np.empty(window, dtype=np.float64)

    def add(self, seconds: float) -> None:
        self._window[self.count % self._window.size] = seconds
        self.count += 1
        self.total += seconds

    def stats(self) -> StageStats:
        recent = self._window[: min(self.count, self._window.size)]
        p50, p99 = np.percentile(recent, [50, 99]).tolist()
        return StageStats(self.count, self.total, self.total / self.count, p50, p99)


class Profiler:
    """Running per-stage timings of one backend (not thread-safe: one pipeline, one caller).

    `record(timings)` adds the stage timings of one call; `stats()` summarises every stage
    seen so far; `last` holds the timings of the most recent call, for a per-call log line or
    for a runtime that observes each call into its own histograms.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self._series: dict[str, _Series] = {}
        self.last: dict[str, float] = {}

    def record(self, timings: dict[str, float]) -> None:
        """Add the timings of one call, `{stage: seconds}`."""
        for stage, seconds in timings.items():
            series = self._series.get(stage)
            if series is None:
                series = self._series[stage] = _Series(self.window)
            series.add(seconds)
        self.last = timings

    def stats(self) -> dict[str, StageStats]:
        """Statistics per recorded stage, in pipeline order (unknown stages last)."""
        order = {stage: i for i, stage in enumerate(STAGES)}
        names = sorted(self._series, key=lambda s: (order.get(s, len(order)), s))
        return {name: self._series[name].stats() for name in names}

    def reset(self) -> None:
        """Forget every timing."""
        self._series.clear()
        self.last = {}
