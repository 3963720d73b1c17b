"""What the SDK's pipeline costs: the logistic backend through Packflow beside the same
numpy code called directly.

    .venv/bin/python bench/sdk_overhead.py [--batch-size 1024] [--rounds 15]

Three ways over the same batch of demo records (16 float features):

- direct:    build the feature array, `execute`, `transform_outputs`, as plain calls;
- pipeline:  `backend(records)`: preprocess -> execute -> transform_outputs, profiled;
- run_batch: the pipeline plus per-row validation, as the runtime calls it.

The direct path builds its array the way the numpy preprocessor does (one `np.fromiter`
over every value), so the ratio measures the pipeline's overhead, not a slower hand-written
conversion. Each figure is the median over rounds of the mean time per call.
"""

from __future__ import annotations

import argparse
import operator
import statistics
import time
from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np

from packflow.examples.logistic import LogisticBackend


def demo_records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 16)).tolist()
    return [
        {"id": f"r{i}", "timestamp": 1732521600000 + i, **{f"x{j}": v for j, v in enumerate(row)}}
        for i, row in enumerate(features)
    ]


def per_call_seconds(fn: Callable[[], object], rounds: int, min_round_s: float = 0.2) -> float:
    """Median over `rounds` of the mean seconds per call, each round lasting `min_round_s`."""
    fn()  # warm up
    calls = 1
    while True:  # calibrate: enough calls per round for the timer to be negligible
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start >= min_round_s:
            break
        calls *= 2
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    records = demo_records(args.batch_size)
    backend = LogisticBackend()
    pick = operator.itemgetter(*backend.config.feature_names)
    n, k = len(records), len(backend.config.feature_names)

    def direct() -> list[dict[str, Any]]:
        values = chain.from_iterable(map(pick, records))
        features = np.fromiter(values, np.float64, n * k).reshape(n, k)
        return backend.transform_outputs(backend.execute(features))

    assert direct() == backend(records) == backend.run_batch(records).outputs

    ways = {
        "direct": direct,
        "pipeline": lambda: backend(records),
        "run_batch": lambda: backend.run_batch(records),
    }
    seconds = {name: per_call_seconds(fn, args.rounds) for name, fn in ways.items()}
    base = args.batch_size / seconds["direct"]
    print(f"logistic backend, batch {args.batch_size}, median of {args.rounds} rounds")
    print(f"{'path':<10} {'us/batch':>10} {'records/s':>12} {'vs direct':>10}")
    for name, s in seconds.items():
        rate = args.batch_size / s
        print(f"{name:<10} {s * 1e6:>10.1f} {rate:>12,.0f} {rate / base:>10.2f}")
    stats = backend.profiler.stats()
    print(
        "per stage (all calls above):",
        ", ".join(f"{stage} p50 {s.p50_s * 1e6:.1f}us" for stage, s in stats.items()),
    )


if __name__ == "__main__":
    main()
