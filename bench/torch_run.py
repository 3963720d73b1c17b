"""The torch workload: records/s of the torch backends through Kafka, by micro-batch size,
with and without `--overlap`, on the CPU or a GPU.

    .venv/bin/python -m bench.torch_run                       # CPU (docs/PERFORMANCE.md)
    python -m bench.torch_run --device cuda --mlp-records 1000000 --text-records 100000

For each backend (`torch-mlp` over demo records, `text-embedding` over text records of
`schemas/text_input.avsc`) an input topic of `--partitions` partitions is pre-filled, then
one replica (`packflow run`, at-least-once; `--replicas` for more) reads it whole for each `--batch-sizes` value,
each with its own consumer group and results topic (log-append times). Batch size 1 reads a
topic of its own, smaller (`--*-batch1-records`): at its speed the rate is steady long before
the end. Reported per run: records/s from the replica's partition assignment to its last
result (the main figure: the topic is full from the start, so this is the steady rate plus
one fetch, model loading excluded), from the first result to the last (meaningless when a
run is a few batches), and from process start to the last result (imports and model
loading included); on CUDA, the GPU's utilisation
(`nvidia-smi`, sampled every 100 ms between the first and the last result). Nothing is
asserted.

With `--replicas N` > 1 each run starts its replicas on an empty topic of its own and fills
it once every replica holds partitions (a pre-filled topic would be half read by the first
replica before the others have loaded their models); "assigned to last" then counts from the
start of the fill.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.workload import (
    ROOT,
    CommitWatcher,
    Running,
    Topics,
    delete_topics,
    group_settled,
    new_topics,
    prefill,
    produce_all,
    read_results,
    start_cluster,
    wait_until,
)
from packflow.runtime.codecs import make_encoder
from packflow.runtime.contracts import load_schema
from packflow.runtime.generate import synthetic_records
from packflow.runtime.processes import packflow_command, read_events

BACKENDS = {
    "mlp": ("packflow.examples.torch_mlp:Backend", "demo_input"),
    "text": ("packflow.examples.text_embedding:Backend", "text_input"),
}


def prefill_text(bootstrap: str, topic: str, count: int) -> None:
    encoder = make_encoder("schemaless", "text_input")
    records = synthetic_records(load_schema("text_input"), count, seed=1)
    produce_all(bootstrap, topic, ((r["id"].encode(), encoder.encode(r)) for r in records))


def fill(bootstrap: str, backend: str, topic: str, count: int) -> None:
    if backend == "mlp":
        prefill(bootstrap, topic, count)
    else:
        prefill_text(bootstrap, topic, count)


class GpuSampler(threading.Thread):
    """`nvidia-smi`'s GPU utilisation (%) every 100 ms, with wall-clock times (ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[int, int]] = []
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             "-lms", "100"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def run(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip().isdigit():
                self.samples.append((int(time.time() * 1000), int(line)))

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)

    def mean_between(self, first_ms: int, last_ms: int) -> float | None:
        inside = [u for t, u in self.samples if first_ms <= t <= last_ms]
        return round(sum(inside) / len(inside), 1) if inside else None


def assigned_at(log: Path) -> int:
    """Wall-clock ms of the first `partitions_assigned` log event (of any replica)."""
    for event in read_events(log, "partitions_assigned"):
        if event.get("partitions"):
            return int(dt.datetime.fromisoformat(event["timestamp"]).timestamp() * 1000)
    raise RuntimeError(f"{log}: no partitions_assigned event")


def one_run(
    args: argparse.Namespace,
    bootstrap: str,
    backend: str,
    input_topic: str,
    count: int,
    batch_size: int,
    overlap: bool,
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    several = args.replicas > 1
    if several:  # a topic of its own, filled once every replica holds partitions
        input_topic = f"in-{tag}"
        new_topics(bootstrap, [input_topic], args.partitions, results=False)
    t = Topics(input_topic, f"res-{tag}", f"dlq-{tag}", f"torch-bench-{tag}")
    new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
    command = [
        *packflow_command(), "run",
        "--backend", BACKENDS[backend][0], "--schema", BACKENDS[backend][1],
        "--max-batch-size", str(batch_size), "--max-wait-ms", str(args.max_wait_ms),
        "--overlap" if overlap else "--no-overlap",
        "--replicas", str(args.replicas),
        "--config", f"device={args.device}",
        "--config", f"half_precision={'true' if args.half else 'false'}",
        "--bootstrap-servers", bootstrap, "--input-topic", t.input,
        "--results-topic", t.results, "--dead-letter-topic", t.dead_letters,
        "--group-id", t.group,
    ]  # fmt: skip
    if backend == "text":
        for pair in args.text_config:
            command += ["--config", pair]
    half = "-half" if args.half else ""
    log = args.logs / f"{backend}-b{batch_size}{half}-{'overlap' if overlap else 'plain'}.log"
    gpu = GpuSampler() if args.device.startswith("cuda") and shutil.which("nvidia-smi") else None
    if gpu is not None:
        gpu.start()
    watcher = CommitWatcher(bootstrap, t.group, t.input, args.partitions)
    running = Running([command], log)
    try:
        clock_ms = None
        if several:
            settled = wait_until(
                lambda: group_settled(bootstrap, t.group, args.replicas),
                args.timeout,
                running.alive,
                0.5,
            )
            if not settled:
                raise RuntimeError(f"{args.replicas} replicas never all held partitions; see {log}")
            clock_ms = int(time.time() * 1000)
            fill(bootstrap, backend, input_topic, count)
        done = wait_until(lambda: watcher.total() >= count, args.timeout, running.alive, 0.5)
    finally:
        codes = running.stop()
        watcher.close()
        if gpu is not None:
            gpu.stop()
    if not done:
        raise RuntimeError(f"{backend} b={batch_size}: not done (exit {codes}); see {log}")
    results = read_results(bootstrap, t.results, args.partitions)
    delete_topics(bootstrap, [t.results, t.dead_letters])
    assert results.first_ms is not None and results.last_ms is not None
    assigned_ms = clock_ms if clock_ms is not None else assigned_at(log)
    span = max(results.last_ms - results.first_ms, 1) / 1000
    row: dict[str, Any] = {
        "backend": backend,
        "replicas": args.replicas,
        "half": args.half,
        "batch_size": batch_size,
        "overlap": overlap,
        "records": count,
        "results": results.count,
        "distinct": len(results.keys),
        "assigned_to_last_rps": round(
            results.count / (max(results.last_ms - assigned_ms, 1) / 1000)
        ),
        "first_to_last_rps": round(results.count / span),
        "start_to_last_rps": round(
            results.count / (max(results.last_ms - running.started_ms, 1) / 1000)
        ),
        "peak_rss_mb": round(running.peak_rss / 2**20),
    }
    if gpu is not None:
        row["gpu_util_mean_pct"] = gpu.mean_between(results.first_ms, results.last_ms)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="the backends' device config")
    parser.add_argument("--half", action="store_true", help="half precision (CUDA only)")
    parser.add_argument("--backends", default="mlp,text")
    parser.add_argument(
        "--text-config", action="append", default=[], help="KEY=VALUE for the text backend"
    )
    parser.add_argument("--batch-sizes", default="1,256,4096")
    parser.add_argument("--overlap", default="off,on", help="off, on, or off,on")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=1, help="replicas (processes) per run")
    parser.add_argument("--max-wait-ms", type=int, default=50)
    parser.add_argument("--mlp-records", type=int, default=200_000)
    parser.add_argument("--mlp-batch1-records", type=int, default=20_000)
    parser.add_argument("--text-records", type=int, default=6_000)
    parser.add_argument("--text-batch1-records", type=int, default=600)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/torch-cpu.json")
    parser.add_argument("--logs", type=Path, default=ROOT / "bench/logs")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    overlaps = [o == "on" for o in args.overlap.split(",")]
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    cluster = start_cluster()
    rows: list[dict[str, Any]] = []
    try:
        bootstrap = cluster.bootstrap
        for backend in args.backends.split(","):
            full = getattr(args, f"{backend}_records")
            small = getattr(args, f"{backend}_batch1_records")
            topics = {n: f"in-{backend}-{n}-{uuid.uuid4().hex[:6]}" for n in {full, small}}
            new_topics(bootstrap, topics.values(), args.partitions, results=False)
            if args.replicas == 1:
                for n, topic in topics.items():
                    fill(bootstrap, backend, topic, n)
            for size in sizes:
                count = small if size == 1 else full
                for overlap in overlaps:
                    rows.append(
                        one_run(args, bootstrap, backend, topics[count], count, size, overlap)
                    )
    finally:
        cluster.stop(delete_data=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"device": args.device, "half": args.half, "rows": rows}, indent=1)
    )
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| backend | precision | replicas | max_batch_size | overlap | records "
            "| records/s assigned to last | first to last | start to last | GPU util % |"
        ),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {'float16' if r.get('half') else 'float32'} "
            f"| {r.get('replicas', 1)} | {r['batch_size']} | {'on' if r['overlap'] else 'off'} "
            f"| {r['records']:,} | {r['assigned_to_last_rps']:,} | {r['first_to_last_rps']:,} | {r['start_to_last_rps']:,} "
            f"| {r.get('gpu_util_mean_pct', '-')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
