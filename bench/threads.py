"""CPU per record of each system, split by thread: a quick A/B beside `make bench`.

    .venv/bin/python -m bench.threads [--records 500000] [--systems handwritten,at-least-once]
        [--rounds 2]

Each system reads a pre-filled topic of its own (rounds interleave the systems); when the
group has committed every record, the CPU time of each of its process's threads is read from
`/proc/<pid>/task/*/stat`, before the process stops. librdkafka names its threads `rdk:*`;
the thread whose id is the process's is Packflow's fetch side (and start-up), the busiest
other Python thread its inference worker. Linux only. No py-spy, so no sampling overhead.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.run import LOGS
from bench.workload import (
    CommitWatcher,
    Running,
    Topics,
    new_topics,
    prefill,
    start_cluster,
    system_commands,
    wait_until,
)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of `pid`, by 'name:tid'."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        label = f"{name}:{tid}" + (" (main)" if tid == str(pid) else "")
        found[label] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def measure(
    system: str, bootstrap: str, t: Topics, args: argparse.Namespace
) -> tuple[float, dict[str, float]]:
    """One system over its topic: seconds to the last commit, and its threads' CPU."""
    commands = system_commands(system, 1, bootstrap, t, args.batch_size, 50)
    running = Running(commands, LOGS / f"threads-{system}.log")
    watcher = CommitWatcher(bootstrap, t.group, t.input, args.partitions)
    try:
        began = time.monotonic()
        wait_until(lambda: watcher.total() >= args.records, 600, running.alive)
        seconds = time.monotonic() - began
        return seconds, thread_cpu(running.procs[0].pid)  # before it stops
    finally:
        watcher.close()
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--systems", default="handwritten,at-least-once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster()
    try:
        bootstrap = cluster.bootstrap
        for round_ in range(1, args.rounds + 1):
            for n, system in enumerate(args.systems.split(",")):
                name = f"threads-{round_}-{n}"
                t = Topics(f"{name}-in", f"{name}-out", f"{name}-dlq", name)
                new_topics(bootstrap, [t.input], args.partitions, results=False)
                new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
                prefill(bootstrap, t.input, args.records)
                seconds, per_thread = measure(system, bootstrap, t, args)
                total = sum(per_thread.values())
                print(
                    f"round {round_} {system}: {seconds:.1f} s to the last commit, CPU "
                    f"{total:.2f} s = {total / args.records * 1e6:.1f} us per record"
                )
                for label, cpu in sorted(per_thread.items(), key=lambda kv: -kv[1]):
                    if cpu >= 0.05:
                        print(f"    {label:<32} {cpu:7.2f} s")
    finally:
        cluster.stop(delete_data=True)


if __name__ == "__main__":
    main()
