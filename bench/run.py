"""The benchmark: Packflow beside a hand-written confluent-kafka loop and Quix Streams, on one
workload, in one run, against a local Kafka broker started for it.

    .venv/bin/python -m bench.run                      # the full run (`make bench`)
    .venv/bin/python -m bench.run --records 50000 --rounds 1 --latency-seconds 5   # a quick one

Workload: an input topic of `--partitions` (6) partitions pre-filled once with `--records`
(500,000) Avro records of `schemas/demo_input.avsc`; the logistic backend; JSON results keyed
by id. Each system reads the whole topic from scratch with its own consumer group and its own
results topic (`message.timestamp.type=LogAppendTime`):

- handwritten:    `bench/handwritten.py` (consume a batch, decode, one numpy call, produce,
                  flush, commit): the speed limit;
- at-least-once:  `packflow run --guarantee at-least-once --max-batch-size B`;
- exactly-once:   `packflow run --guarantee exactly-once --max-batch-size B`;
- batch-1:        `packflow run --max-batch-size 1`, what per-record frameworks do (it reads
                  only `--batch1-records` of the topic: at its speed the whole would take
                  minutes per round and the rate is steady long before);
- quix:           `bench/quix_app.py`, the same job as a Quix Streams application (what users
                  would otherwise pick), with Quix's defaults (at-least-once, a commit every
                  5 s, per-record processing) but `auto_offset_reset="earliest"`; N replicas are
                  N processes in one consumer group. It runs in its own venv, bench/.venv-quix
                  (`make bench-quix-venv`, pins in bench/requirements-quix.txt: Quix Streams
                  3.28 needs confluent-kafka <2.13, older than Packflow's venv has); a bench
                  started without it builds it with uv, or, where it cannot, says so and
                  skips quix.

Each with 1 and 2 replicas (processes), for `--rounds` rounds (systems interleaved), then:

- records/s from the system's process start to its last result, and from its first result
  to its last (log-append times of the results topic); start-up: process start to the
  first result;
- CPU seconds per million records over the system's processes and their children, and the
  broker's (psutil), from process start until every record is committed (for quix that
  includes up to one 5 s commit interval of waiting); peak RSS (the sum over the system's
  processes);
- latency at half load: a fresh input topic, the system started on it, records produced at
  half the system's own first-to-last rate of that round, each stamped with the time it was
  handed to the producer client; latency = the result's log-append time minus that stamp, over
  `--latency-seconds` after a warm-up.

Output: a table on stdout, `--json` (bench/results/latest.json) and `--chart`
(docs/performance.png; needs matplotlib, the `bench` extra). Figures are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.workload import (
    QUIX_PYTHON,
    ROOT,
    SYSTEMS,
    CommitWatcher,
    PacedProducer,
    Running,
    Topics,
    broker_pids,
    cpu_of,
    delete_topics,
    group_settled,
    new_topics,
    percentile,
    prefill,
    quix_venv_ready,
    read_results,
    start_cluster,
    system_commands,
    wait_until,
)

LOGS = ROOT / "bench" / "logs"
PRIME = 60  # records that show a system is up before the paced load starts


def throughput(args: argparse.Namespace, bootstrap: str, brokers: list[int], input_topic: str,
               system: str, replicas: int, rnd: int) -> dict[str, Any]:  # fmt: skip
    tag = f"{system}-r{replicas}-{rnd}"
    t = Topics(input_topic, f"out-{tag}", f"dlq-{tag}", f"g-{tag}")
    new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
    target = min(args.records, args.batch1_records) if system == "batch-1" else args.records
    broker_cpu0 = cpu_of(brokers)
    cmds = system_commands(system, replicas, bootstrap, t, args.batch_size, args.max_wait_ms)
    running = Running(cmds, LOGS / f"{tag}.log")
    watcher = CommitWatcher(bootstrap, t.group, input_topic, args.partitions)
    ok = wait_until(lambda: watcher.total() >= target, args.timeout, running.alive)
    done_ms = time.time() * 1000
    running.sample()
    cpu = running.cpu_seconds()
    broker_cpu = cpu_of(brokers) - broker_cpu0
    watcher.close()
    codes = running.stop()
    res = read_results(bootstrap, t.results, args.partitions)
    delete_topics(bootstrap, [t.results, t.dead_letters])
    n = len(res.keys)
    if not ok or n < target or res.first_ms is None or res.last_ms is None:
        raise RuntimeError(f"{tag}: {n} of {target} results (exit codes {codes}); see logs")
    span = max(res.last_ms - res.first_ms, 1) / 1000
    whole = max(res.last_ms - running.started_ms, 1) / 1000
    row = {
        "system": system,
        "replicas": replicas,
        "round": rnd,
        "records": n,
        "results_produced": res.count,
        "start_to_last_s": whole,
        # start-up: process start to the first result's log-append time
        "first_result_s": (res.first_ms - running.started_ms) / 1000,
        "first_to_last_s": span,
        "records_per_s_start_to_last": n / whole,
        "records_per_s_first_to_last": n / span,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu / n * 1e6,
        "broker_cpu_s": broker_cpu,
        "broker_cpu_s_per_million": broker_cpu / n * 1e6,
        "peak_rss_mb": running.peak_rss / 2**20,
        "exit_codes": codes,
        "seconds_to_all_committed": (done_ms - running.started_ms) / 1000,
    }
    _say(f"  {tag:<24} {row['records_per_s_first_to_last']:>9,.0f} rec/s first-to-last  "
         f"{row['records_per_s_start_to_last']:>9,.0f} start-to-last  "
         f"cpu {row['cpu_s_per_million']:6.1f} s/M  rss {row['peak_rss_mb']:6.0f} MB")  # fmt: skip
    return row


def latency(args: argparse.Namespace, bootstrap: str, system: str, replicas: int, rnd: int,
            rate: float) -> dict[str, Any]:  # fmt: skip
    tag = f"{system}-r{replicas}-{rnd}"
    t = Topics(f"lat-in-{tag}", f"lat-out-{tag}", f"lat-dlq-{tag}", f"lg-{tag}")
    new_topics(bootstrap, [t.input], args.partitions, results=False)
    new_topics(bootstrap, [t.results, t.dead_letters], args.partitions, results=True)
    cmds = system_commands(system, replicas, bootstrap, t, args.batch_size, args.max_wait_ms)
    running = Running(cmds, LOGS / f"lat-{tag}.log", interval=1.0)
    watcher = CommitWatcher(bootstrap, t.group, t.input, args.partitions)
    # Prime: the paced load starts only once every replica has joined and the system has
    # answered, so that neither start-up backlog nor a late rebalance inflates the latencies.
    prefill(bootstrap, t.input, PRIME, prefix="P")

    def primed() -> bool:
        return watcher.total() >= PRIME and group_settled(bootstrap, t.group, replicas)

    if not wait_until(primed, 90, running.alive):
        watcher.close()
        running.stop(timeout=45)
        delete_topics(bootstrap, [t.input, t.results, t.dead_letters])
        raise RuntimeError(f"latency {tag}: not {replicas} members with {PRIME} records in 90 s")
    seconds = args.warmup_seconds + args.latency_seconds + 10
    paced = PacedProducer(bootstrap, t.input, rate, seconds)
    paced.start()
    try:
        time.sleep(args.warmup_seconds)
        first = len(paced.sent_ms)
        time.sleep(args.latency_seconds)
        last = len(paced.sent_ms)
    finally:
        paced.stop()
    sent = PRIME + len(paced.sent_ms)
    wait_until(lambda: watcher.total() >= sent, 60, running.alive)
    watcher.close()
    running.stop()
    res = read_results(bootstrap, t.results, args.partitions, keep=True)
    delete_topics(bootstrap, [t.input, t.results, t.dead_letters])
    lat = [
        res.appended[f"L{n}"] - paced.sent_ms[n] for n in range(first, last) if f"L{n}" in res.appended
    ]  # fmt: skip
    row = {
        "system": system,
        "replicas": replicas,
        "round": rnd,
        "offered_rate": rate,
        "achieved_rate": (last - first) / args.latency_seconds,
        "measured": len(lat),
        "missing": (last - first) - len(lat),
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p99": percentile(lat, 99),
        "latency_ms_max": max(lat) if lat else float("nan"),
    }
    _say(f"  {'latency ' + tag:<32} at {rate:>8,.0f}/s  p50 {row['latency_ms_p50']:6.1f}  "
         f"p99 {row['latency_ms_p99']:6.1f}  max {row['latency_ms_max']:6.1f} ms"
         f"  ({row['missing']} missing)")  # fmt: skip
    return row


# -- summary ---------------------------------------------------------------------------------

METRICS = (
    "records_per_s_first_to_last",
    "records_per_s_start_to_last",
    "first_result_s",
    "cpu_s_per_million",
    "broker_cpu_s_per_million",
    "peak_rss_mb",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_max",
    "offered_rate",
)


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """system/replicas -> metric -> median, min, max, rounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(f"{row['system']}/{row['replicas']}", []).append(row)
    for name, members in groups.items():
        out[name] = {}
        for metric in METRICS:
            values = [r[metric] for r in members if metric in r]
            if values:
                out[name][metric] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "rounds": len(values),
                }
    return out


def ratios(summary: dict[str, Any], replicas: list[int]) -> dict[str, float]:
    def med(system: str, r: int) -> float | None:
        cell = summary.get(f"{system}/{r}", {}).get("records_per_s_first_to_last")
        return None if cell is None else float(cell["median"])

    out = {}
    for r in replicas:
        for name, a, b in (
            ("at-least-once / handwritten", "at-least-once", "handwritten"),
            ("exactly-once / at-least-once", "exactly-once", "at-least-once"),
            ("micro-batching gain: at-least-once / batch-1", "at-least-once", "batch-1"),
            ("quix / handwritten", "quix", "handwritten"),
            ("at-least-once / quix", "at-least-once", "quix"),
        ):
            x, y = med(a, r), med(b, r)
            if x is not None and y:
                out[f"{name} ({r} replica{'s' if r > 1 else ''})"] = x / y
    return out


def table(summary: dict[str, Any]) -> str:
    head = (
        f"{'system':<15}{'repl':>5}{'rec/s 1st-last':>26}{'rec/s start-last':>18}"
        f"{'1st s':>7}{'cpu s/M':>9}{'broker s/M':>11}{'RSS MB':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
    )
    lines = [head, "-" * len(head)]

    def cell(stats: dict[str, Any], metric: str, spread: bool = False) -> str:
        s = stats.get(metric)
        if s is None:
            return "-"
        if spread:
            return f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"
        if metric == "first_result_s":
            return f"{s['median']:.2f}"
        return f"{s['median']:,.1f}" if s["median"] < 1000 else f"{s['median']:,.0f}"

    for name in sorted(
        summary, key=lambda n: (int(n.split("/")[1]), SYSTEMS.index(n.split("/")[0]))
    ):
        system, r = name.split("/")
        s = summary[name]
        lines.append(
            f"{system:<15}{r:>5}{cell(s, 'records_per_s_first_to_last', True):>26}"
            f"{cell(s, 'records_per_s_start_to_last'):>18}{cell(s, 'first_result_s'):>7}"
            f"{cell(s, 'cpu_s_per_million'):>9}"
            f"{cell(s, 'broker_cpu_s_per_million'):>11}{cell(s, 'peak_rss_mb'):>8}"
            f"{cell(s, 'latency_ms_p50'):>8}{cell(s, 'latency_ms_p99'):>8}"
            f"{cell(s, 'latency_ms_max'):>8}"
        )
    return "\n".join(lines)


def chart(summary: dict[str, Any], path: Path, replicas: list[int], target_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in SYSTEMS if any(f"{s}/{r}" in summary for r in replicas)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(replicas)
    for k, r in enumerate(replicas):
        for ax, metric, label in (
            (ax1, "records_per_s_first_to_last", None),
            (ax2, "latency_ms_p99", None),
        ):
            xs, meds, lo, hi = [], [], [], []
            for i, s in enumerate(systems):
                cell = summary.get(f"{s}/{r}", {}).get(metric)
                if cell is None:
                    continue
                xs.append(i + (k - (len(replicas) - 1) / 2) * width)
                meds.append(cell["median"])
                lo.append(cell["median"] - cell["min"])
                hi.append(cell["max"] - cell["median"])
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, label=label or f"{r} replica(s)")
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(systems)), systems)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    ax1.set_ylabel("records/s, first to last result (median, min-max)")
    ax1.set_title("Throughput")
    ax2.axhline(target_ms, color="red", linestyle="--", linewidth=1)
    ax2.text(len(systems) - 0.5, target_ms, f" max_wait_ms + 25 = {target_ms:.0f} ms",
             color="red", va="bottom", ha="right", fontsize=8)  # fmt: skip
    ax2.set_ylabel("p99 latency, ms (input timestamp -> result log-append)")
    ax2.set_title("Latency at half of each system's max rate")
    ax2.set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# -- the run ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = next(
        int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )  # fmt: skip
    pom = (ROOT / "consumer/pom.xml").read_text()
    kafka = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "consumer", "packflow",
                            "backends"], cwd=ROOT, check=False, capture_output=True, text=True).stdout  # fmt: skip
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "runtime_tree_dirty": bool(dirty.strip()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mb": mem,
        "python": platform.python_version(),
        # version() is a bare string in these releases ("2.16.1"[0] was recorded as "2")
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka": kafka.group(1) if kafka else "unknown",
        "load_average_before": os.getloadavg(),
    }


def quix_versions() -> dict[str, str]:
    """Quix Streams' release and the confluent-kafka/librdkafka of its venv (not Packflow's)."""
    code = ("import importlib.metadata as m, confluent_kafka as c; "
            "print(m.version('quixstreams'), m.version('confluent-kafka'), c.libversion()[0])")  # fmt: skip
    done = subprocess.run([str(QUIX_PYTHON), "-c", code], check=False, capture_output=True,
                          text=True)  # fmt: skip
    found = done.stdout.split()
    if done.returncode != 0 or len(found) != 3:
        return {"quixstreams": "unknown"}
    return dict(zip(("quixstreams", "quix_confluent_kafka", "quix_librdkafka"), found, strict=True))


def report_again(args: argparse.Namespace) -> None:
    report = json.loads(args.report.read_text())
    drop = {d for d in args.drop.split(",") if d}

    def keep(row: dict[str, Any]) -> bool:
        return f"{row['system']}-r{row['replicas']}-{row['round']}" not in drop

    rows = [r for r in report["throughput"] if keep(r)]
    lat_rows = [r for r in report["latency"] if keep(r)]
    replicas = sorted({r["replicas"] for r in rows})
    report["summary"] = summary = summarise(rows + lat_rows)
    report["ratios"] = found = ratios(summary, replicas)
    report["dropped"] = sorted(set(report.get("dropped", [])) | drop)
    args.report.write_text(json.dumps(report, indent=2))
    _say(table(summary))
    _say("")
    for name, value in found.items():
        _say(f"{name}: {value:.2f}x")
    if report["dropped"]:
        _say(f"left out: {', '.join(report['dropped'])}")
    if not args.no_chart:
        chart(summary, args.chart, replicas, report["latency_target_ms"])
        _say(f"wrote {args.chart}")


def _say(text: str) -> None:
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Packflow beside a hand-written loop and Quix.")
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", default="1,2", help="comma-separated, e.g. 1,2")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="the loop's consume batch and Packflow's max_batch_size")  # fmt: skip
    parser.add_argument("--max-wait-ms", type=int, default=50)
    parser.add_argument("--batch1-records", type=int, default=50_000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-rate", type=float, default=None,
                        help="offered records/s (default: half each system's measured rate)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=240.0, help="per system run, seconds")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/latest.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs/performance.png")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--report", type=Path, default=None,
                        help="no measuring: re-summarise this JSON (with --drop) and redraw")  # fmt: skip
    parser.add_argument("--drop", default="",
                        help="with --report: comma-separated runs to leave out, e.g. "
                        "handwritten-r2-1 (system-r<replicas>-<round>), with the reason noted")  # fmt: skip
    args = parser.parse_args()
    if args.report is not None:
        return report_again(args)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}: choose among {', '.join(SYSTEMS)}")
    if "quix" in systems:
        why = quix_venv_ready()
        if why is not None:
            _say(f"skipping quix: {why} (make bench-quix-venv builds it)")
            systems.remove("quix")
    replicas = [int(r) for r in args.replicas.split(",")]
    LOGS.mkdir(parents=True, exist_ok=True)

    meta = machine()
    if "quix" in systems:
        meta |= quix_versions()
    _say(f"packflow bench: {args.records:,} records, {args.partitions} partitions, "
         f"{args.rounds} round(s), replicas {replicas}, systems {systems}")  # fmt: skip
    _say(f"machine: {meta['nproc']} cpu ({meta['cpu']}), {meta['memory_mb']:,} MB; "
         f"load {meta['load_average_before']}; commit {meta['commit']}")  # fmt: skip
    if "quix" in systems:
        _say(f"quix: quixstreams {meta['quixstreams']} in {QUIX_PYTHON.parent.parent.name} "
             f"(confluent-kafka {meta.get('quix_confluent_kafka', '?')})")  # fmt: skip
    cluster = start_cluster()
    rows: list[dict[str, Any]] = []
    lat_rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        bootstrap, brokers = cluster.bootstrap, broker_pids(cluster)
        input_topic = "bench-input"
        new_topics(bootstrap, [input_topic], args.partitions, results=False)
        took = prefill(bootstrap, input_topic, args.records)
        _say(f"prefilled {input_topic}: {args.records:,} records in {took:.1f} s")
        for rnd in range(1, args.rounds + 1):
            _say(f"round {rnd}")
            for r in replicas:
                for system in systems:
                    # A system that fails or hangs is reported as such; the run goes on.
                    where = {"system": system, "replicas": r, "round": rnd}
                    try:
                        row = throughput(args, bootstrap, brokers, input_topic, system, r, rnd)
                    except Exception as exc:  # noqa: BLE001
                        failures.append(where | {"phase": "throughput", "error": str(exc)})
                        _say(f"  FAILED {system}-r{r}-{rnd}: {exc}")
                        continue
                    rows.append(row)
                    if not args.no_latency:
                        rate = args.latency_rate or row["records_per_s_first_to_last"] / 2
                        try:
                            lat_rows.append(latency(args, bootstrap, system, r, rnd, rate))
                        except Exception as exc:  # noqa: BLE001
                            failures.append(where | {"phase": "latency", "error": str(exc)})
                            _say(f"  FAILED latency {system}-r{r}-{rnd}: {exc}")
                    partial = {"meta": meta, "throughput": rows, "latency": lat_rows,
                               "failures": failures}  # fmt: skip
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(partial, indent=2))
    finally:
        cluster.stop(delete_data=True)
        meta["load_average_after"] = os.getloadavg()

    summary = summarise(rows + lat_rows)
    found = ratios(summary, replicas)
    report = {
        "meta": meta,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "throughput": rows,
        "latency": lat_rows,
        "summary": summary,
        "ratios": found,
        "failures": failures,
        "latency_target_ms": args.max_wait_ms + 25,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    _say("")
    _say(table(summary))
    _say("")
    for name, value in found.items():
        _say(f"{name}: {value:.2f}x")
    for f in failures:
        _say(f"FAILED {f['system']}-r{f['replicas']}-{f['round']} {f['phase']}: {f['error']}")
    _say(f"load average before {meta['load_average_before']}, after {meta['load_average_after']}")
    _say(f"wrote {args.json}")
    if not args.no_chart:
        try:
            chart(summary, args.chart, replicas, args.max_wait_ms + 25)
            _say(f"wrote {args.chart}")
        except ImportError:
            _say("no chart: matplotlib is not installed (pip install -e '.[bench]')")


if __name__ == "__main__":
    sys.exit(main())
