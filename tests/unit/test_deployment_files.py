"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from packflow.runtime.jars import pinned_kafka_version

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


# -- Kubernetes, Prometheus, Grafana ---------------------------------------------------------

K8S = ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> the manifest of that kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc | {"_file": path.name}
    return found


def test_kubernetes_manifests_fit_together() -> None:
    m = manifests()
    assert set(m) == {"ConfigMap", "Deployment", "Service", "ScaledObject", "Kustomization"}
    assert sorted(m["Kustomization"]["resources"]) == sorted(
        d["_file"] for kind, d in m.items() if kind != "Kustomization"
    )
    config = m["ConfigMap"]["data"]
    deployment, service, scaled = m["Deployment"], m["Service"], m["ScaledObject"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert service["spec"]["selector"] == labels
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": m["ConfigMap"]["metadata"]["name"]}}]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config["PACKFLOW_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["args"][0] == "run"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    # KEDA scales this Deployment on the lag of the group and topic the replicas use.
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["PACKFLOW_GROUP_ID"]
    assert trigger["metadata"]["topic"] == config["PACKFLOW_INPUT_TOPIC"]
    assert trigger["metadata"]["bootstrapServers"] == config["PACKFLOW_BOOTSTRAP_SERVERS"]
    # Never more replicas than the partitions `packflow topics create` makes by default.
    assert scaled["spec"]["maxReplicaCount"] <= 6


def test_the_configmap_holds_runtime_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from packflow.runtime.settings import RuntimeSettings

    config = manifests()["ConfigMap"]["data"]
    for name, value in config.items():  # PACKFLOW_LOG_FORMAT too: the logging set-up's
        monkeypatch.setenv(name, value)
    settings = RuntimeSettings()
    assert settings.metrics_port == int(config["PACKFLOW_METRICS_PORT"])
    assert settings.group_id == config["PACKFLOW_GROUP_ID"]
    assert settings.input_topic == config["PACKFLOW_INPUT_TOPIC"]
    assert settings.max_batch_size == int(config["PACKFLOW_MAX_BATCH_SIZE"])


def test_the_dashboard_charts_only_metrics_a_replica_exports_and_all_the_main_ones() -> None:
    from packflow.runtime.metrics import ReplicaMetrics

    exported = {family.name for family in ReplicaMetrics().registry.collect()}
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/packflow.json").read_text())
    charted = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"packflow_\w+", target["expr"])
    }
    assert charted <= exported
    assert exported - charted <= {"packflow_batches"}


def test_compose_prometheus_scrapes_every_replica_and_grafana_reads_it() -> None:
    services = compose()["services"]
    command = services["replica"]["command"]
    port = int(command[command.index("--metrics-port") + 1])
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["dns_sd_configs"] == [{"names": ["replica"], "type": "A", "port": port}]
    assert (
        "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (services["prometheus"]["volumes"])
    )
    provisioning = ROOT / "deploy/grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards/packflow.yml").read_text())[
        "providers"
    ]
    assert (
        f"./deploy/grafana/dashboards:{provider['options']['path']}:ro"
        in (services["grafana"]["volumes"])
    )
