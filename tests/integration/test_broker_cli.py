"""`packflow kafka start | stop | status` and every error case, through the real console script."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from packflow.runtime.broker_settings import BrokerSettings
from packflow.runtime.jars import ensure_jars
from tests.conftest import free_port_block
from tests.runtime_io import PACKFLOW


def packflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PACKFLOW, *args], capture_output=True, text=True, env=env, timeout=240, check=False
    )


def tool_path(tmp_path: Path, *tools: str) -> dict[str, str]:
    """An environment whose PATH holds only the named tools (and no JAVA_HOME)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run this test"
        (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    return env


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stderr.splitlines()[0]


@pytest.fixture(scope="module")
def warm_cache() -> None:
    """Resolve the pinned Kafka once (Maven), so the tests below can start without it."""
    settings = BrokerSettings()
    ensure_jars(settings.home, settings.version, settings.mvn)


@pytest.fixture
def ports() -> Iterator[tuple[str, str]]:
    base = free_port_block(2)
    yield str(base), str(base + 1)


def test_lifecycle_start_is_idempotent_offline_status_shows_topics_stop_only_recorded(
    tmp_path: Path, ports: tuple[str, str], warm_cache: None
) -> None:
    port, cport = ports
    data = str(tmp_path / "kafka")
    where = ["--data-dir", data]
    # A warm cache needs no Maven (and so no network): PATH here has java only.
    env = tool_path(tmp_path, "java")
    started = packflow(
        "kafka", "start", "--port", port, "--controller-port", cport, *where, env=env
    )
    assert started.returncode == 0, started.stderr
    assert f"ready at 127.0.0.1:{port}" in started.stdout
    assert started.stdout.splitlines()[-1] == f"127.0.0.1:{port}"
    try:
        again = packflow("kafka", "start", "--port", port, "--controller-port", cport, *where)
        assert again.returncode == 0, again.stderr
        assert f"already running at 127.0.0.1:{port}" in again.stdout

        create = ["topics", "create", "--bootstrap-servers", f"127.0.0.1:{port}"]
        names = ["--input-topic", "in", "--results-topic", "out", "--dead-letter-topic", "dlq"]
        made = packflow(*create, "--partitions", "2", *names)
        assert made.returncode == 0, made.stderr
        assert made.stdout.splitlines() == [
            "created in (2 partitions, replication 1)",
            "created out (2 partitions, replication 1, compacted)",
            "created dlq (2 partitions, replication 1)",
        ]
        remade = packflow(*create, "--partitions", "2", *names)
        assert remade.stdout.splitlines()[0].startswith("exists  in")

        pid = json.loads((tmp_path / "kafka" / "pids.json").read_text())["0"]
        status = packflow("kafka", "status", *where)
        assert status.returncode == 0, status.stderr
        node_rows = [line for line in status.stdout.splitlines() if f"127.0.0.1:{port}" in line]
        assert len(node_rows) == 1 and str(pid) in node_rows[0] and "running" in node_rows[0]
        cells = [line.split("│") for line in status.stdout.splitlines() if "│" in line]
        topic_rows = {
            c[1].strip(): c[2].strip() for c in cells if c[1].strip() in {"in", "out", "dlq"}
        }
        assert topic_rows == {"in": "2", "out": "2", "dlq": "2"}
    finally:
        stopped = packflow("kafka", "stop", *where)
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == f"stopped Kafka (pids {pid})"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = packflow("kafka", "status", *where)
    assert after.returncode == 1
    assert "stopped" in after.stdout


def test_stop_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    data.mkdir()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # A stale pid file whose pid now belongs to some other program.
        (data / "pids.json").write_text(json.dumps({"0": stranger.pid}))
        stopped = packflow("kafka", "stop", "--data-dir", str(data))
        assert stopped.returncode == 0
        assert stopped.stdout.startswith("Kafka is not running")
        assert stranger.poll() is None
    finally:
        stranger.send_signal(signal.SIGKILL)
        stranger.wait()


def test_no_java_is_one_clear_line(tmp_path: Path, ports: tuple[str, str]) -> None:
    env = tool_path(tmp_path, "mvn")
    proc = packflow("kafka", "start", "--port", ports[0], "--data-dir", str(tmp_path), env=env)
    assert error_line(proc).startswith("packflow: error: Java not found (PATH): ")
    assert "Java 17+" in error_line(proc)


def test_java_home_without_java_is_named(tmp_path: Path, ports: tuple[str, str]) -> None:
    env = tool_path(tmp_path, "mvn")
    env["JAVA_HOME"] = str(tmp_path / "no-jdk")
    proc = packflow("kafka", "start", "--port", ports[0], "--data-dir", str(tmp_path), env=env)
    assert error_line(proc).startswith(f"packflow: error: Java not found (JAVA_HOME={tmp_path}")


def test_no_maven_with_a_cold_cache_is_one_clear_line(
    tmp_path: Path, ports: tuple[str, str]
) -> None:
    env = tool_path(tmp_path, "java")
    env["PACKFLOW_BROKER_HOME"] = str(tmp_path / "empty-cache")
    proc = packflow("kafka", "start", "--port", ports[0], "--data-dir", str(tmp_path), env=env)
    assert error_line(proc).startswith("packflow: error: Maven (mvn) not found on PATH: ")


def test_maven_resolution_failure_names_the_version(tmp_path: Path, ports: tuple[str, str]) -> None:
    env = dict(os.environ)
    env["PACKFLOW_BROKER_HOME"] = str(tmp_path / "cache")
    env["PACKFLOW_BROKER_VERSION"] = "4.99.99"
    proc = packflow("kafka", "start", "--port", ports[0], "--data-dir", str(tmp_path), env=env)
    line = error_line(proc)
    assert line.startswith(
        "packflow: error: Maven could not resolve Apache Kafka 4.99.99 from Maven Central: "
    )
    assert "kafka_2.13" in line and "4.99.99" in line.split("Central: ", 1)[1]
    # Nothing half-resolved is left to be mistaken for a cache later.
    assert not (tmp_path / "cache" / "4.99.99" / "libs").exists()
    assert not (tmp_path / "cache" / "4.99.99" / "resolved.txt").exists()


def test_port_in_use_is_one_clear_line(
    tmp_path: Path, ports: tuple[str, str], warm_cache: None
) -> None:
    port, cport = ports
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(port)))
        squatter.listen()
        proc = packflow(
            "kafka",
            "start",
            "--port",
            port,
            "--controller-port",
            cport,
            "--data-dir",
            str(tmp_path / "kafka"),
        )
    assert error_line(proc) == (
        f"packflow: error: port {port} on 127.0.0.1 is in use by another process (node 0 of "
        "the local cluster needs it); free it or choose --port/--controller-port"
    )
    assert not (tmp_path / "kafka" / "pids.json").exists()


def test_broker_exiting_during_start_shows_the_tail_of_its_log(
    tmp_path: Path, ports: tuple[str, str], warm_cache: None
) -> None:
    port, cport = ports
    where = ["--port", port, "--controller-port", cport, "--data-dir", str(tmp_path / "kafka")]
    assert packflow("kafka", "start", *where).returncode == 0
    assert packflow("kafka", "stop", *where[-2:]).returncode == 0
    # Damage the node's storage identity: the broker refuses to start on it.
    meta = tmp_path / "kafka" / "node-0" / "data" / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=0", "node.id=7"))

    proc = packflow("kafka", "start", *where)

    log = tmp_path / "kafka" / "node-0" / "logs" / "server.log"
    assert error_line(proc) == (
        f"packflow: error: Kafka node 0 exited during start (exit code 1); last lines of {log}:"
    )
    tail = proc.stderr.splitlines()[1:]
    assert any("node.id" in line or "node id" in line for line in tail), tail
    assert packflow("kafka", "status", *where[-2:]).returncode == 1


def test_invalid_setting_names_the_field(tmp_path: Path) -> None:
    proc = packflow("kafka", "start", "--nodes", "2", "--data-dir", str(tmp_path))
    assert error_line(proc).startswith("packflow: error: invalid broker settings: nodes: ")
