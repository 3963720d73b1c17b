"""Request-reply latency: `Client.predict` one record at a time from many callers, through
replicas of a backend, on a local Kafka broker started for it.

    .venv/bin/python -m bench.predict                                # 1000 records, 50 threads
    .venv/bin/python -m bench.predict --callers 1 --records 200      # one caller at a time
    .venv/bin/python -m bench.predict --max-wait-ms 5                # replicas batch less

Each caller predicts its share of the records one after another and times each call (from
`predict()` to its result); the same is done with `apredict` from asyncio tasks. Reported:
p50, p99 and max per mode, and predictions per second. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.workload import delete_topics, new_topics, percentile, start_cluster
from packflow.runtime.client import Client
from packflow.runtime.contracts import load_schema
from packflow.runtime.generate import synthetic_records
from packflow.runtime.processes import ReplicaProcess
from packflow.runtime.settings import RuntimeSettings


def records(count: int, start: int) -> list[dict[str, Any]]:
    return list(synthetic_records(load_schema("demo_input"), count, start=start))


def threads(client: Client, batch: list[dict[str, Any]], callers: int) -> list[float]:
    def caller(share: list[dict[str, Any]]) -> list[float]:
        took = []
        for record in share:
            began = time.perf_counter()
            client.predict(record, timeout_s=60)
            took.append((time.perf_counter() - began) * 1000)
        return took

    with ThreadPoolExecutor(callers) as pool:
        shares = [batch[i::callers] for i in range(callers)]
        return [ms for got in pool.map(caller, shares) for ms in got]


async def tasks(client: Client, batch: list[dict[str, Any]], callers: int) -> list[float]:
    async def caller(share: list[dict[str, Any]]) -> list[float]:
        took = []
        for record in share:
            began = time.perf_counter()
            await client.apredict(record, timeout_s=60)
            took.append((time.perf_counter() - began) * 1000)
        return took

    got = await asyncio.gather(*(caller(batch[i::callers]) for i in range(callers)))
    return [ms for share in got for ms in share]


def report(mode: str, ms: list[float], seconds: float) -> str:
    return (
        f"{mode:<24} {len(ms):>6} predictions  p50 {percentile(ms, 50):7.1f} ms  "
        f"p99 {percentile(ms, 99):7.1f} ms  max {max(ms):7.1f} ms  {len(ms) / seconds:7.0f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="per mode")
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--backend", default="packflow.examples.echo:Backend")
    parser.add_argument("--max-wait-ms", type=int, default=None, help="the replicas' setting")
    parser.add_argument("--warmup", type=int, default=100, help="records predicted first")
    args = parser.parse_args()

    cluster = start_cluster()
    run: ReplicaProcess | None = None
    stem = f"bench-predict-{uuid.uuid4().hex[:6]}"
    names = [f"{stem}.input", f"{stem}.results", f"{stem}.dead-letter"]
    try:
        new_topics(cluster.bootstrap, [names[0], names[2]], args.partitions, results=False)
        new_topics(cluster.bootstrap, [names[1]], args.partitions, results=True)
        settings = RuntimeSettings(
            bootstrap_servers=cluster.bootstrap,
            input_topic=names[0],
            results_topic=names[1],
            dead_letter_topic=names[2],
            group_id=stem,
        )
        flags = [
            "--bootstrap-servers", cluster.bootstrap,
            "--input-topic", names[0],
            "--results-topic", names[1],
            "--dead-letter-topic", names[2],
            "--group-id", stem,
            "--backend", args.backend,
            "--replicas", str(args.replicas),
        ]  # fmt: skip
        if args.max_wait_ms is not None:
            flags += ["--max-wait-ms", str(args.max_wait_ms)]
        log = Path(tempfile.mkdtemp(prefix="packflow-bench-predict-")) / "replicas.log"
        run = ReplicaProcess(flags, log)
        run.wait_for_replicas(args.replicas)
        with Client(settings) as client:
            threads(client, records(args.warmup, 10_000_000), min(args.callers, args.warmup))
            wait = RuntimeSettings().max_wait_ms if args.max_wait_ms is None else args.max_wait_ms
            lines = [
                f"{args.replicas} replicas of {args.backend}, {args.callers} callers, "
                + f"max_wait_ms {wait}"
            ]
            began = time.perf_counter()
            ms = threads(client, records(args.records, 0), args.callers)
            lines.append(report("predict (threads)", ms, time.perf_counter() - began))
            began = time.perf_counter()
            ms = asyncio.run(tasks(client, records(args.records, args.records), args.callers))
            lines.append(report("apredict (asyncio tasks)", ms, time.perf_counter() - began))
        print("\n".join(lines))
    finally:
        if run is not None:
            run.terminate()
        delete_topics(cluster.bootstrap, names)
        cluster.stop(delete_data=True)


if __name__ == "__main__":
    main()
