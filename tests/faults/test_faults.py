"""Faults, each under both guarantees: zero missing results always; zero duplicates for
exactly-once; duplicates counted for at-least-once. `make faults` runs the full form."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.broker import LocalCluster
from consumer.topics import TopicSpec, admin_client, create_topics
from tests.conftest import TopicFactory, cluster_settings
from tests.faults.harness import FAST_SESSION, GUARANTEES, KILLS, RECORDS, check, tally
from tests.kafka_io import produce
from tests.runtime_io import Pipeline, Run, demo_records, make_pipeline, produce_records

LOGISTIC = ["--backend", "backends.logistic:Backend"]
FLAKY = ["--backend", f"{Path(__file__).with_name('backends.py')}:Flaky"]

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
        for kill in range(KILLS):
            time.sleep(1.5)
            victim = chooser.choice(sorted(live_pids(run).items()))
            os.kill(victim[1], signal.SIGKILL)
            run.wait_for("replica_spawned", 3 + kill + 1, timeout=60)
            produce_records(pipeline, chunks[kill + 1])
        t = tally(f"kill -9 x{KILLS} (3 replicas)", guarantee, pipeline, ids_of(records))
    finally:
        assert run.terminate() == 0
    t.record()
    check(t)


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
        first.wait_for("partitions_assigned")
        produce_records(pipeline, thirds[0])
        extra = [Run(pipeline, tmp_path / f"extra{i}.log", *flags) for i in range(2)]
        for run in extra:
            run.wait_for("partitions_assigned")
        produce_records(pipeline, thirds[1])
        for run in extra:  # back to one replica, mid-stream
            assert run.terminate() == 0
        produce_records(pipeline, thirds[2])
        t = tally(f"scale 1 -> 3 -> 1{named}", guarantee, pipeline, ids_of(records))
    finally:
        for run in [first, *extra]:
            assert run.terminate() == 0
    t.record()
    check(t)


@OVERLAP
def test_zombie_frozen_past_the_session_timeout(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str, overlap: bool
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    more, named = overlap_flags(overlap)
    run = start(pipeline, tmp_path, guarantee, 2, 64, *FAST_SESSION, *more)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[: RECORDS // 2])
        zombie = live_pids(run)[0]
        os.kill(zombie, signal.SIGSTOP)
        try:
            produce_records(pipeline, records[RECORDS // 2 :])
            time.sleep(10)  # > session.timeout.ms: the group moves on without it
        finally:
            os.kill(zombie, signal.SIGCONT)
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
    run = start(pipeline, tmp_path, guarantee, 2, 128)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[: RECORDS // 2])
        time.sleep(0.5)
        own_cluster.stop()  # mid-stream
        time.sleep(3)
        own_cluster.start()
        produce_records(pipeline, records[RECORDS // 2 :])
        t = tally("1-node broker stopped and restarted", guarantee, pipeline, ids_of(records))
    finally:
        assert run.terminate(timeout=90) == 0
    t.record()
    check(t)


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
        own_cluster.kill_node(leader)
        produce_records(pipeline, records[RECORDS // 2 :])
        t = tally("3 nodes, leader of partition 0 killed", guarantee, pipeline, ids_of(records))
    finally:
        assert run.terminate(timeout=90) == 0
    t.record()
    check(t)


def test_flaky_backend_and_poison_records(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(RECORDS)
    poison = [(f"poison-{i}".encode(), b"\x00\xff not avro" * (i + 1)) for i in range(50)]
    run = start(pipeline, tmp_path, guarantee, 2, 64, backend=FLAKY)
    try:
        run.wait_for("partitions_assigned", 2)
        produce_records(pipeline, records[: RECORDS // 2])
        produce(pipeline.bootstrap, pipeline.input, poison)
        produce_records(pipeline, records[RECORDS // 2 :])
        ids = ids_of(records) + [k.decode() for k, _ in poison]
        t = tally("flaky backend (1 call in 5 fails) + 50 poison", guarantee, pipeline, ids)
    finally:
        assert run.terminate() == 0
    t.record()
    check(t)
    assert t.dead_letters >= 50  # the poison, and records whose lone retry failed too
    assert t.results + t.dead_letters >= len(ids)
