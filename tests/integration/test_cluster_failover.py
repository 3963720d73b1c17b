"""The 3-node cluster keeps serving an RF=3 topic when a node dies; no acknowledged record is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from packflow.runtime.broker import LocalCluster
from packflow.runtime.topics import TopicSpec, admin_client, create_topics
from tests.conftest import cluster_settings
from tests.kafka_io import consume_exactly, produce

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path: Path) -> LocalCluster:
    cluster = LocalCluster(cluster_settings(tmp_path / "kafka3", nodes=3))
    cluster.start()
    yield cluster
    cluster.stop(delete_data=True)


def test_three_nodes_survive_leader_kill_without_losing_acked_records(
    cluster: LocalCluster,
) -> None:
    bootstrap = cluster.bootstrap
    assert len(bootstrap.split(",")) == 3
    topic = "failover"
    create_topics(bootstrap, [TopicSpec(topic, 3, 3)])
    admin = admin_client(bootstrap)
    # A new topic's metadata reaches every node a moment after it is created (CI once read
    # it with a partition missing): wait for the whole of it.
    deadline = time.monotonic() + 30
    while True:
        before = admin.list_topics(topic, timeout=10).topics[topic].partitions
        if sorted(before) == [0, 1, 2] and all(p.leader >= 0 for p in before.values()):
            break
        assert time.monotonic() < deadline, before
        time.sleep(0.2)
    assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in before.values())

    acks = {"acks": "all", "enable.idempotence": True}
    first = produce(bootstrap, topic, [(f"a{i}".encode(), b"x" * 100) for i in range(2000)], **acks)

    victim = before[0].leader
    cluster.kill_node(victim)
    alive = [s.node.node_id for s in cluster.status() if s.alive]
    assert alive == sorted({0, 1, 2} - {victim})

    # Acks=all with min.insync.replicas=2 still succeeds with two of three replicas.
    second = produce(
        bootstrap, topic, [(f"b{i}".encode(), b"y" * 100) for i in range(2000)], **acks
    )
    acked = {m.key() for m in first + second}
    assert len(acked) == 4000

    received = consume_exactly(bootstrap, topic, 4000)
    keys = [m.key() for m in received]
    assert len(keys) == 4000  # nothing lost, and the idempotent producer wrote no duplicate
    assert set(keys) == acked

    after = admin.list_topics(topic, timeout=10).topics[topic].partitions
    assert after[0].leader != victim
    assert victim not in after[0].isrs
