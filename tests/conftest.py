"""Session-wide real Kafka broker and fresh topics per test.

The broker is the project's own local cluster (`consumer.broker.LocalCluster`) started once per
test session on free loopback ports in a temporary data directory, and stopped at the end. Set
`PACKFLOW_BOOTSTRAP_SERVERS` to run the suite against a broker that is already up instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from packflow.runtime.broker import BrokerSettings, LocalCluster, free_port_block
from packflow.runtime.topics import TopicSpec, admin_client, create_topics
from tests.schema_registry import schema_registry_url

__all__ = ["schema_registry_url"]  # a fixture: every test module may ask for it


def cluster_settings(data_dir: Path, nodes: int = 1, **extra: object) -> BrokerSettings:
    """Settings for a test cluster of `nodes` on free ports (controller ports right after)."""
    base = free_port_block(2 * nodes)
    return BrokerSettings(
        nodes=nodes, port=base, controller_port=base + nodes, data_dir=data_dir, **extra
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the session's real broker."""
    given = os.environ.get("PACKFLOW_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    cluster = LocalCluster(cluster_settings(tmp_path_factory.mktemp("kafka")))
    cluster.start()
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop(delete_data=True)


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Create uniquely named topics for one test; they are deleted after it."""
    created: list[str] = []
    stem = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:60]

    def make(partitions: int = 3, replication_factor: int = 1, **config: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:8]}"
        create_topics(kafka_bootstrap, [TopicSpec(name, partitions, replication_factor, config)])
        created.append(name)
        return name

    yield make
    if created:
        admin = admin_client(kafka_bootstrap)  # must outlive its futures
        for future in admin.delete_topics(created).values():
            future.result(timeout=30)


@pytest.fixture(scope="session")
def packflow_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `python -m build` makes of this checkout (built once per session, from a copy,
    so that setuptools' build/ and egg-info stay out of the checkout and stale files out of
    the wheel)."""
    source = tmp_path_factory.mktemp("source") / "packflow"
    shutil.copytree(
        Path(__file__).resolve().parents[1],
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".packflow"
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), source],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("packflow-*.whl")
    return wheel
