"""Faults, each under both guarantees, counted key by key across the results and dead-letter
topics (tests/faults/harness.py): every input answered, exactly once under exactly-once; no
dead letters but the poison; repeats counted for at-least-once (none for a clean rebalance).
Each scenario also shows from the replicas' own log events or the broker that its fault
landed. `make faults` runs the full form."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from packflow.runtime.broker import LocalCluster
from packflow.runtime.status import group_state
from packflow.runtime.topics import TopicSpec, admin_client, create_topics
from tests.conftest import TopicFactory, cluster_settings
from tests.faults.harness import FAST_SESSION, GUARANTEES, KILLS, RECORDS, check, tally
from tests.kafka_io import produce
from tests.runtime_io import Pipeline, Run, demo_records, make_pipeline, produce_records

LOGISTIC = ["--backend", "packflow.examples.logistic:Backend"]
BACKENDS = Path(__file__).with_name("backends.py")
FLAKY = ["--backend", f"{BACKENDS}:Flaky"]

pytestmark = pytest.mark.parametrize("guarantee", GUARANTEES)


def ids_of(records: list[dict]) -> list[str]:
    return [r["id"] for r in records]


def start(
    pipeline: Pipeline,
    tmp_path: Path,
    guarantee: str,
    replicas: int,
    batch: int,
    *extra: str,
    backend: list[str] = LOGISTIC,
) -> Run:
    """`packflow run` with `replicas` replicas under the supervisor."""
    return Run(
        pipeline,
        tmp_path / "run.log",
        *backend,
        "--replicas",
        str(replicas),
        "--guarantee",
        guarantee,
        "--max-batch-size",
        str(batch),
        *extra,
    )


def live_pids(run: Run) -> dict[int, int]:
    """replica index -> pid of its latest incarnation."""
    return {e["replica"]: e["pid"] for e in run.events("replica_spawned")}


def held_by(run: Run, pid: int) -> list[int]:
    """The partitions the replica process `pid` held after its latest rebalance."""
    changes = [e for e in run.events("partitions_assigned") if e["pid"] == pid]
    return changes[-1]["held"] if changes else []


def wait_holding(run: Run, pid: int, timeout: float = 60) -> list[int]:
    """Until the replica process `pid` holds partitions; returns them."""
    run.until(lambda: bool(held_by(run, pid)), lambda: f"pid {pid} holds no partition", timeout)
    return held_by(run, pid)


def lag(pipeline: Pipeline) -> int:
    """Input records the group has not committed yet: work in flight, as the broker sees it."""
    return group_state(pipeline.bootstrap, pipeline.group, pipeline.input).lag


def test_kill_9_repeatedly(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    run = start(pipeline, tmp_path, guarantee, 3, 128, *FAST_SESSION)
    chooser = random.Random(1)
    try:
        run.wait_for("partitions_assigned", 3)
        chunks = [records[i :: KILLS + 1] for i in range(KILLS + 1)]
        produce_records(pipeline, chunks[0])
        killed: list[tuple[int, list[int]]] = []
        for kill in range(KILLS):
            time.sleep(1.5)
            _, victim = chooser.choice(sorted(live_pids(run).items()))
            # The fault lands on a replica at work: one that holds partitions.
            killed.append((victim, wait_holding(run, victim)))
            os.kill(victim, signal.SIGKILL)
            run.wait_for("replica_spawned", 3 + kill + 1, timeout=60)
            produce_records(pipeline, chunks[kill + 1])
        t = tally(f"kill -9 x{KILLS} (3 replicas)", guarantee, pipeline, ids_of(records))
        # The supervisor restarted each: every latest incarnation runs (a SIGTERM before its
        # start-up would end it by the signal, and `packflow run` with exit code 1).
        run.until(
            lambda: (
                set(live_pids(run).values()) <= {e["pid"] for e in run.events("replica_started")}
            ),
            lambda: f"not every replica of {live_pids(run)} started",
            timeout=90,
        )
    finally:
        assert run.terminate() == 0
    t.record()
    check(t)
    assert len(killed) == KILLS and all(held for _, held in killed), killed
    # Each killed process ended by the signal (the supervisor saw -9), none stopped cleanly.
    exits = [e["exitcode"] for e in run.events("replica_exited")]
    assert exits.count(-signal.SIGKILL) == KILLS, exits
    stopped = {e["pid"] for e in run.events("replica_stopped")}
    assert not stopped & {pid for pid, _ in killed}


# With --overlap a prepared batch may outlive its partitions' assignment (a rebalance, an
# aborted transaction's rewind): it must be dropped, not run, and nothing lost.
OVERLAP = pytest.mark.parametrize("overlap", [False, True], ids=["plain", "overlap"])


def overlap_flags(overlap: bool) -> tuple[list[str], str]:
    return (["--overlap"], " (overlap)") if overlap else ([], "")


@OVERLAP
def test_scale_1_to_3_to_1(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str, overlap: bool
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    thirds = [records[i::3] for i in range(3)]
    more, named = overlap_flags(overlap)
    flags = [*LOGISTIC, "--guarantee", guarantee, "--max-batch-size", "128", *FAST_SESSION, *more]
    first = Run(pipeline, tmp_path / "first.log", *flags)
    extra: list[Run] = []
    try:
        first.wait_for_replicas(1)
        produce_records(pipeline, thirds[0])
        extra = [Run(pipeline, tmp_path / f"extra{i}.log", *flags) for i in range(2)]
        for run in extra:  # each joined and was given partitions: a rebalance happened
            run.wait_for_replicas(1)
        produce_records(pipeline, thirds[1])
        for run in extra:  # back to one replica, mid-stream
            assert run.terminate() == 0
        produce_records(pipeline, thirds[2])
        t = tally(f"scale 1 -> 3 -> 1{named}", guarantee, pipeline, ids_of(records))
    finally:
        for run in [first, *extra]:
            assert run.terminate() == 0
    t.record()
    # Every partition moves by revoke (never lost): at-least-once repeats nothing either.
    check(t, clean=True)
    for run in [first, *extra]:
        assert run.events("partitions_lost") == []
    changes = first.events("partitions_assigned")
    assert any(e["lost"] for e in changes), "the first replica never gave partitions away"
    assert changes[-1]["held"] == list(range(6)), changes[-1]  # and took them all back
    for run in extra:  # each did work before it left
        (stopped,) = run.events("replica_stopped")
        assert stopped["records_in"] > 0, stopped


@OVERLAP
def test_zombie_frozen_past_the_session_timeout(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str, overlap: bool
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    more, named = overlap_flags(overlap)
    run = start(pipeline, tmp_path, guarantee, 2, 64, *FAST_SESSION, *more)
    try:
        # Both hold partitions: the cooperative rebalance is over, so what the zombie holds
        # when frozen is settled (frozen between its rounds, it would still give some away).
        run.wait_for_replicas(2)
        produce_records(pipeline, records[: RECORDS // 2])
        zombie, other = live_pids(run)[0], live_pids(run)[1]
        frozen_with = wait_holding(run, zombie)
        os.kill(zombie, signal.SIGSTOP)
        try:
            produce_records(pipeline, records[RECORDS // 2 :])
            # > session.timeout.ms: the group moves on without it (the other takes them all)
            run.until(
                lambda: held_by(run, other) == list(range(6)),
                lambda: f"pid {other} never held every partition",
                timeout=60,
            )
        finally:
            os.kill(zombie, signal.SIGCONT)

        # Thawed, the zombie finds it lost what it was frozen with.
        def zombie_lost() -> list[dict]:
            return [e for e in run.events("partitions_lost") if e["pid"] == zombie]

        run.until(lambda: bool(zombie_lost()), lambda: f"zombie {zombie} lost nothing", 60)
        assert set(frozen_with) <= set(zombie_lost()[0]["partitions"]), frozen_with
        t = tally(
            f"zombie (SIGSTOP 10 s > session timeout){named}", guarantee, pipeline, ids_of(records)
        )
    finally:
        assert run.terminate() == 0
    t.record()
    check(t)


@pytest.fixture
def own_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    nodes = getattr(request, "param", 1)
    cluster = LocalCluster(cluster_settings(tmp_path / "kafka", nodes=nodes))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(delete_data=True)


def own_pipeline(cluster: LocalCluster, replication: int) -> Pipeline:
    stem = uuid.uuid4().hex[:8]
    pipeline = Pipeline(
        cluster.bootstrap, f"{stem}.in", f"{stem}.results", f"{stem}.dlq", f"g-{stem}"
    )
    create_topics(
        cluster.bootstrap,
        [
            TopicSpec(pipeline.input, 6, replication),
            TopicSpec(pipeline.results, 6, replication, {"cleanup.policy": "compact"}),
            TopicSpec(pipeline.dead_letters, 6, replication),
        ],
    )
    return pipeline


def test_broker_stopped_and_restarted(
    own_cluster: LocalCluster, tmp_path: Path, guarantee: str
) -> None:
    pipeline = own_pipeline(own_cluster, 1)
    records = demo_records(RECORDS)
    half = RECORDS // 2
    gate = tmp_path / "gate"
    gate.touch()  # the replicas read the first half but answer none of it yet
    gated = ["--backend", f"{BACKENDS}:Gated", "--config", f"gate={gate}"]
    run = start(pipeline, tmp_path, guarantee, 2, 128, backend=gated)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[:half])
        # Work in flight, surely: nothing of the first half can be committed yet.
        in_flight = lag(pipeline)
        own_cluster.stop()
        gate.unlink()  # answered while the broker is away: results wait in the producer
        time.sleep(3)
        own_cluster.start()
        produce_records(pipeline, records[half:])
        t = tally("1-node broker stopped and restarted", guarantee, pipeline, ids_of(records))
    finally:
        gate.unlink(missing_ok=True)
        assert run.terminate(timeout=90) == 0
    t.record()
    check(t)
    assert in_flight == half


@pytest.mark.parametrize("own_cluster", [3], indirect=True)
def test_leader_of_a_busy_partition_killed_on_three_nodes(
    own_cluster: LocalCluster, tmp_path: Path, guarantee: str
) -> None:
    pipeline = own_pipeline(own_cluster, 3)
    records = demo_records(RECORDS)
    run = start(pipeline, tmp_path, guarantee, 2, 128)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[: RECORDS // 2])
        metadata = admin_client(pipeline.bootstrap).list_topics(pipeline.input, timeout=10)
        leader = metadata.topics[pipeline.input].partitions[0].leader
        in_flight = lag(pipeline)
        own_cluster.kill_node(leader)
        produce_records(pipeline, records[RECORDS // 2 :])
        metadata = admin_client(pipeline.bootstrap).list_topics(pipeline.input, timeout=10)
        moved_to = metadata.topics[pipeline.input].partitions[0].leader
        t = tally("3 nodes, leader of partition 0 killed", guarantee, pipeline, ids_of(records))
    finally:
        assert run.terminate(timeout=90) == 0
    t.record()
    check(t)
    assert in_flight > 0
    assert moved_to not in (leader, -1), (leader, moved_to)  # partition 0 failed over


def test_flaky_backend_and_poison_records(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    poison = [(f"poison-{i}".encode(), b"\x00\xff not avro" * (i + 1)) for i in range(50)]
    # A good record is dead-lettered only when its batch's calls and then its own all fail:
    # 0.2 ** (2 * (retries + 1)) per record; 6 retries make that 1.6e-10 (the default 3,
    # 2.6e-6: about one record in a run of 100,000 every fourth run).
    run = start(pipeline, tmp_path, guarantee, 2, 64, "--retry-attempts", "6", backend=FLAKY)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[: RECORDS // 2])
        produce(pipeline.bootstrap, pipeline.input, poison)
        produce_records(pipeline, records[RECORDS // 2 :])
        ids = ids_of(records) + [k.decode() for k, _ in poison]
        t = tally(
            "flaky backend (1 call in 5 fails, 6 retries) + 50 poison", guarantee, pipeline, ids
        )
    finally:
        assert run.terminate() == 0
    t.record()
    # The poison, each once (exactly-once) and never a result; with retries, nothing else.
    check(t, poison=[k.decode() for k, _ in poison])
    assert t.dead_letters == 50, t  # the poison only: every good record was answered
    assert t.results - t.duplicates == RECORDS, t
    if guarantee == "exactly-once":
        assert t.results == RECORDS, t
    assert sum(e["retries"] for e in run.events("replica_stopped")) > 0
