"""Where one replica's time goes: py-spy samples a `packflow run --replicas 1` process (both
threads, native frames off) while it reads a pre-filled topic, then prints the hottest
functions by self time and by inclusive time, per thread.

    .venv/bin/python -m bench.profile [--records 200000] [--rate 200]

Writes the raw collapsed stacks to bench/results/profile.txt (flamegraph.pl / speedscope
read them).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.run import LOGS
from bench.workload import (
    ROOT,
    VENV_BIN,
    CommitWatcher,
    Running,
    Topics,
    new_topics,
    prefill,
    start_cluster,
    system_commands,
    wait_until,
)


def summarise(raw: Path, top: int) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        total += n
        names = [f"{thread.split(' ')[0]} {f}" for f in frames[1:]] or [thread]
        self_time[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="py-spy over one Packflow replica.")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--guarantee", default="at-least-once")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/profile.txt")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster()
    try:
        bootstrap = cluster.bootstrap
        t = Topics("prof-in", "prof-out", "prof-dlq", "prof")
        new_topics(bootstrap, [t.input], args.partitions, results=False)
        new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
        prefill(bootstrap, t.input, args.records)
        cmd = system_commands(args.guarantee, 1, bootstrap, t, args.batch_size, 50)
        running = Running(cmd, LOGS / "profile.log")
        spy = subprocess.Popen(
            [str(VENV_BIN / "py-spy"), "record", "--pid", str(running.procs[0].pid),
             "--rate", str(args.rate), "--format", "raw", "--threads", "-o", str(args.out),
             *(["--gil"] if args.gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        watcher = CommitWatcher(bootstrap, t.group, t.input, args.partitions)
        began = time.monotonic()
        wait_until(lambda: watcher.total() >= args.records, 600, running.alive)
        seconds = time.monotonic() - began
        watcher.close()
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(60)
        running.stop()
    finally:
        cluster.stop(delete_data=True)
    print(f"{args.records:,} records in {seconds:.1f} s from process start "
          f"({args.records / seconds:,.0f}/s, under py-spy)")  # fmt: skip
    print(summarise(args.out, args.top))


if __name__ == "__main__":
    main()
