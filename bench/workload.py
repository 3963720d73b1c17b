"""What the benchmark and the soak share: the local broker, the workload's records, the
systems under test as processes, and the measurements taken of them.

Nothing here asserts a timing: the harness reports, people judge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)

from packflow.runtime.broker import BrokerSettings, LocalCluster, free_port_block
from packflow.runtime.processes import packflow_command
from packflow.runtime.publisher import send
from packflow.runtime.topics import TopicSpec, admin_client, create_topics

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SYSTEMS = ("handwritten", "at-least-once", "exactly-once", "batch-1", "quix")
# Quix Streams runs in a venv of its own (3.28 needs confluent-kafka <2.13, older than ours).
QUIX_VENV = ROOT / "bench" / ".venv-quix"
QUIX_PYTHON = QUIX_VENV / "bin" / "python"
QUIX_REQUIREMENTS = ROOT / "bench" / "requirements-quix.txt"
QUIX_STAMP = QUIX_VENV / ".installed"

# -- the broker ------------------------------------------------------------------------------


def start_cluster() -> LocalCluster:
    """A one-node local Kafka on free loopback ports in a fresh temporary directory."""
    base = free_port_block(2)
    data_dir = Path(tempfile.mkdtemp(prefix="packflow-bench-"))
    cluster = LocalCluster(
        BrokerSettings(nodes=1, port=base, controller_port=base + 1, data_dir=data_dir)
    )
    cluster.start()
    return cluster


def broker_pids(cluster: LocalCluster) -> list[int]:
    return [s.pid for s in cluster.status() if s.pid is not None and s.alive]


def new_topics(bootstrap: str, names: Iterable[str], partitions: int, results: bool) -> None:
    """Input topics are plain; results topics stamp each record with its log-append time."""
    config = {"message.timestamp.type": "LogAppendTime"} if results else {}
    create_topics(bootstrap, [TopicSpec(n, partitions, 1, config) for n in names])


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = admin_client(bootstrap)
    for future in admin.delete_topics(names).values():
        # A leftover topic only costs disk.
        with contextlib.suppress(Exception):
            future.result(timeout=30)


# -- the records -----------------------------------------------------------------------------


def _zigzag(n: int) -> bytes:
    """Avro's long encoding: zigzag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class DemoRecords:
    """Schemaless Avro of `schemas/demo_input.avsc` (id, timestamp, x0..x15 floats), encoded
    by hand so that the load generator is cheap next to the systems it loads: the 16 floats
    of a pool of feature rows are packed once, the id and timestamp per record."""

    def __init__(self, pool: int = 4096, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        rows = rng.standard_normal((pool, 16)).astype("<f4")
        self._features = [row.tobytes() for row in rows]

    def value(self, record_id: str, timestamp_ms: int, n: int) -> bytes:
        raw = record_id.encode()
        return _zigzag(len(raw)) + raw + _zigzag(timestamp_ms) + self._features[n % 4096]


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "batch.size": 1 << 20})


def produce_all(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> float:
    """Produce (key, value) pairs as fast as possible; returns the seconds it took."""
    began = time.monotonic()
    p = producer(bootstrap)
    for n, (key, value) in enumerate(messages):
        send(p, topic, key, value)
        if n % 10_000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError(f"prefill of {topic}: records left unacknowledged")
    return time.monotonic() - began


def prefill(bootstrap: str, topic: str, count: int, prefix: str = "rec-") -> float:
    """Produce `count` demo records as fast as possible; returns the seconds it took."""
    records, now_ms = DemoRecords(), int(time.time() * 1000)
    ids = (f"{prefix}{n}" for n in range(count))
    return produce_all(
        bootstrap,
        topic,
        ((i.encode(), records.value(i, now_ms, n)) for n, i in enumerate(ids)),
    )


class PacedProducer(threading.Thread):
    """Produces records at a fixed rate, each stamped with the wall time it was handed to the
    client; the ids are `L<n>`, so a result's key gives back its record's send time. Keys and
    values are built before the clock starts (for at most `seconds`), so that the load
    generator takes as little CPU from the system under test as it can."""

    def __init__(self, bootstrap: str, topic: str, rate: float, seconds: float = 60.0) -> None:
        super().__init__(daemon=True, name="paced-producer")
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.sent_ms: list[int] = []  # send time of record `L<n>`, by n
        self._halt = threading.Event()
        records, stamp = DemoRecords(seed=1), int(time.time() * 1000)
        count = int(rate * seconds)
        self._keys = [f"L{n}".encode() for n in range(count)]
        self._values = [records.value(f"L{n}", stamp, n) for n in range(count)]

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        # linger 1 ms here: the load generator should add as little latency as it can.
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1})
        keys, values, topic, sent_ms = self._keys, self._values, self.topic, self.sent_ms
        began, sent = time.monotonic(), 0
        while not self._halt.is_set() and sent < len(keys):
            due = min(int((time.monotonic() - began) * self.rate), len(keys))
            now_ms = int(time.time() * 1000)
            for n in range(sent, due):
                send(p, topic, keys[n], values[n])
            sent_ms.extend([now_ms] * (due - sent))
            sent = max(sent, due)
            p.poll(0)
            time.sleep(0.001)
        p.flush(60)


# -- reading back ----------------------------------------------------------------------------


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """How many records of `topic` the group has committed (offsets start at 0)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        c.close()


class CommitWatcher:
    """Polls one group's committed offsets with one long-lived consumer (not a member)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self._tps = [TopicPartition(topic, p) for p in range(partitions)]

    def total(self) -> int:
        try:
            return sum(max(tp.offset, 0) for tp in self._c.committed(self._tps, timeout=10))
        except Exception:  # noqa: BLE001 - the group may not exist yet
            return 0

    def close(self) -> None:
        self._c.close()


@dataclass
class Results:
    count: int = 0
    keys: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    # key -> log-append time, kept only when asked for (latency)
    appended: dict[str, int] = field(default_factory=dict)


def read_results(bootstrap: str, topic: str, partitions: int, keep: bool = False) -> Results:
    """Every committed result of `topic`, with first and last log-append times."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{os.getpid()}-{time.monotonic_ns()}",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, at_end = Results(), set()
    deadline = time.monotonic() + 300
    try:
        while len(at_end) < partitions and time.monotonic() < deadline:
            for m in c.consume(10_000, timeout=1.0):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                kind, ts = m.timestamp()
                if kind != TIMESTAMP_LOG_APPEND_TIME:
                    raise RuntimeError(f"{topic}: results must carry log-append time")
                key = m.key().decode()
                out.count += 1
                out.keys.add(key)
                out.first_ms = ts if out.first_ms is None else min(out.first_ms, ts)
                out.last_ms = ts if out.last_ms is None else max(out.last_ms, ts)
                if keep:
                    out.appended[key] = ts
    finally:
        c.close()
    return out


# -- the systems as processes ----------------------------------------------------------------


def quix_venv_ready() -> str | None:
    """None when bench/.venv-quix is there and up to date with bench/requirements-quix.txt,
    else why not. It is `make bench-quix-venv`'s job; for a bench started without make, this
    builds it the same way (uv, from the project venv or the PATH), which takes seconds with
    uv's cache and a minute or so without."""
    fresh = QUIX_STAMP.exists() and QUIX_STAMP.stat().st_mtime >= QUIX_REQUIREMENTS.stat().st_mtime
    if QUIX_PYTHON.exists() and fresh:
        return None
    uv = VENV_BIN / "uv" if (VENV_BIN / "uv").exists() else shutil.which("uv")
    if uv is None:
        return f"{QUIX_VENV.relative_to(ROOT)} is missing and there is no uv to build it"
    print(f"building {QUIX_VENV.relative_to(ROOT)} (as `make bench-quix-venv` does)", flush=True)
    steps = [
        [str(uv), "venv", "--quiet", "--allow-existing", "--python", sys.executable,
         str(QUIX_VENV)],
        [str(uv), "pip", "install", "--quiet", "--compile-bytecode", "--python", str(QUIX_PYTHON),
         "-r", str(QUIX_REQUIREMENTS)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, cwd=ROOT, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"building {QUIX_VENV.relative_to(ROOT)} failed: {last[0]}"
    QUIX_STAMP.touch()
    return None


@dataclass(frozen=True)
class Topics:
    input: str
    results: str
    dead_letters: str
    group: str


def system_commands(
    system: str, replicas: int, bootstrap: str, t: Topics, batch_size: int, max_wait_ms: int
) -> list[list[str]]:
    """The command line(s) of one system: one per process it starts by itself."""
    if system == "handwritten":
        one = [
            sys.executable, "-m", "bench.handwritten",
            "--bootstrap-servers", bootstrap, "--input-topic", t.input,
            "--results-topic", t.results, "--group-id", t.group,
            "--batch-size", str(batch_size), "--max-wait-ms", str(max_wait_ms),
        ]  # fmt: skip
        return [one] * replicas
    if system == "quix":
        # One Quix application per replica, all in one consumer group: how Quix scales out.
        one = [
            str(QUIX_PYTHON), "-m", "bench.quix_app",
            "--bootstrap-servers", bootstrap, "--input-topic", t.input,
            "--results-topic", t.results, "--group-id", t.group,
        ]  # fmt: skip
        return [one] * replicas
    guarantee = "exactly-once" if system == "exactly-once" else "at-least-once"
    return [
        [
            *packflow_command(), "run",
            "--backend", "packflow.examples.logistic:Backend",
            "--replicas", str(replicas),
            "--max-batch-size", "1" if system == "batch-1" else str(batch_size),
            "--max-wait-ms", str(max_wait_ms),
            "--guarantee", guarantee,
            "--bootstrap-servers", bootstrap, "--input-topic", t.input,
            "--results-topic", t.results, "--dead-letter-topic", t.dead_letters,
            "--group-id", t.group,
        ]
    ]  # fmt: skip


class Running:
    """The processes of one system (and their children), sampled for CPU time and RSS."""

    def __init__(self, commands: list[list[str]], log_path: Path, interval: float = 0.2) -> None:
        env = os.environ | {"PACKFLOW_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        self.started_ms = int(time.time() * 1000)
        self._log = log_path.open("wb")
        self.procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
            for cmd in commands
        ]
        self._cpu: dict[int, float] = {}
        self._rss_samples: list[tuple[float, int]] = []
        self.peak_rss = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._interval = interval
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    def _tree(self) -> list[psutil.Process]:
        found = []
        for popen in self.procs:
            try:
                root = psutil.Process(popen.pid)
                found.append(root)
                found.extend(root.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return found

    def sample(self) -> int:
        """Take one sample now; returns the tree's total RSS."""
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss += proc.memory_info().rss
                with self._lock:
                    self._cpu[proc.pid] = max(
                        self._cpu.get(proc.pid, 0.0), times.user + times.system
                    )
            except psutil.NoSuchProcess:
                continue
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            self._rss_samples.append((time.monotonic(), rss))
        return rss

    def _sample_loop(self) -> None:
        while not self._halt.wait(self._interval):
            self.sample()

    def cpu_seconds(self) -> float:
        with self._lock:
            return sum(self._cpu.values())

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 60.0) -> list[int | None]:
        self._halt.set()
        self._sampler.join()
        tree = self._tree()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        # Whatever the system started and left behind (a hung replica) goes too.
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
        self._log.close()
        return codes


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def wait_until(
    condition: Callable[[], bool], timeout: float, alive: Callable[[], bool], poll: float = 0.2
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not alive():
            return False
        time.sleep(poll)
    return False


def group_settled(bootstrap: str, group: str, members: int) -> bool:
    """Whether the group is stable with `members` members, each holding partitions: a paced
    load started before the last replica joins would time its rebalance, not the system."""
    admin = admin_client(bootstrap)  # must outlive the future it answers
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # noqa: BLE001 - not there yet
        return False
    found = description.members
    return (
        str(description.state).endswith("STABLE")
        and len(found) == members
        and all(m.assignment is not None and m.assignment.topic_partitions for m in found)
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def pack_float_check() -> None:
    """Self-check of the hand encoder against fastavro (run by `python -m bench.workload`)."""
    import json
    from io import BytesIO

    import fastavro

    schema = fastavro.parse_schema(json.loads((ROOT / "schemas/demo_input.avsc").read_text()))
    value = DemoRecords().value("rec-42", 1732521600123, 42)
    decoded = fastavro.schemaless_reader(BytesIO(value), schema, None)
    assert decoded["id"] == "rec-42" and decoded["timestamp"] == 1732521600123, decoded
    assert struct.pack("<f", decoded["x15"]) == value[-4:]
    print("ok", decoded)


if __name__ == "__main__":
    pack_float_check()
