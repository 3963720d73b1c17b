"""The soak: millions of records through one Packflow replica, RSS sampled against the number
of records processed. Memory must not grow with records processed (bounded queues, bounded
dedup cache): the peak RSS over the whole run should stay within 10% of the peak RSS up to
the checkpoint.

    .venv/bin/python -m bench.soak                         # 5,000,000 records (`make soak`)
    .venv/bin/python -m bench.soak --records 1000000       # a shorter one

The input topic is pre-filled, then `packflow run --replicas 1` (at-least-once) reads it;
every `--interval` seconds the replica's RSS and its group's committed offsets are sampled.
Writes `--json` (bench/results/soak.json) with every sample. Reports, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench.run import LOGS, machine
from bench.workload import (
    ROOT,
    CommitWatcher,
    Running,
    Topics,
    new_topics,
    prefill,
    read_results,
    start_cluster,
    system_commands,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="RSS of one replica over millions of records.")
    parser.add_argument("--records", type=int, default=5_000_000)
    parser.add_argument("--checkpoint", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/soak.json")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    meta = machine()
    cluster = start_cluster()
    samples: list[dict[str, float]] = []
    try:
        bootstrap = cluster.bootstrap
        t = Topics("soak-in", "soak-out", "soak-dlq", "soak")
        new_topics(bootstrap, [t.input], args.partitions, results=False)
        new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
        took = prefill(bootstrap, t.input, args.records)
        print(f"prefilled {args.records:,} records in {took:.0f} s", flush=True)
        cmd = system_commands("at-least-once", 1, bootstrap, t, args.batch_size, 50)
        running = Running(cmd, LOGS / "soak.log", interval=args.interval)
        watcher = CommitWatcher(bootstrap, t.group, t.input, args.partitions)
        began = time.monotonic()
        done = 0
        while done < args.records and running.alive():
            time.sleep(args.interval)
            rss = running.sample()
            done = watcher.total()
            samples.append({"s": time.monotonic() - began, "records": done, "rss_mb": rss / 2**20})
            if len(samples) % 10 == 0:
                print(f"  {done:>10,} records  rss {rss / 2**20:7.1f} MB", flush=True)
        seconds = time.monotonic() - began
        watcher.close()
        codes = running.stop()
        results = read_results(bootstrap, t.results, args.partitions)
    finally:
        cluster.stop(delete_data=True)
    upto = [s["rss_mb"] for s in samples if s["records"] <= args.checkpoint]
    peak_check = max(upto) if upto else float("nan")
    peak_all = max(s["rss_mb"] for s in samples)
    report = {
        "meta": meta | {"load_average_after": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "records_committed": done,
        "results_distinct": len(results.keys),
        "seconds": seconds,
        "exit_codes": codes,
        "peak_rss_mb_to_checkpoint": peak_check,
        "peak_rss_mb_all": peak_all,
        "growth": peak_all / peak_check - 1,
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"{done:,} records in {seconds:.0f} s ({done / seconds:,.0f}/s); "
          f"{len(results.keys):,} distinct results")  # fmt: skip
    print(f"peak RSS up to {args.checkpoint:,} records: {peak_check:.1f} MB; "
          f"over all {done:,}: {peak_all:.1f} MB ({report['growth']:+.1%})")  # fmt: skip
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
