"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.jars import pinned_kafka_version

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_official_kafka_image_in_kraft_mode_at_the_pinned_version() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{pinned_kafka_version()}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["healthcheck"]["test"][0] == "CMD-SHELL"


def test_compose_creates_topics_before_replicas_start() -> None:
    services = compose()["services"]
    topics = services["topics"]
    assert topics["command"][:2] == ["topics", "create"]
    assert topics["environment"]["PACKFLOW_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    replica = services["replica"]
    assert replica["build"] == "."
    assert replica["command"][0] == "run"
    assert replica["deploy"]["replicas"] >= 2
    assert replica["depends_on"] == {"topics": {"condition": "service_completed_successfully"}}


def test_dockerfile_installs_the_wheel_and_runs_packflow_as_non_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert 'ENTRYPOINT ["packflow"]' in lines
    for needed in ("packflow", "consumer", "backends", "schemas"):
        assert f"COPY {needed} {needed}" in lines


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    return (
        bool(docker)
        and subprocess.run(
            [docker or "docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    )


@pytest.mark.skipif(not _compose_plugin(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    subprocess.run(["docker", "compose", "config", "--quiet"], cwd=ROOT, check=True)
