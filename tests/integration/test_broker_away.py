"""`packflow run` against brokers that are away (issue 16, item 6), as a process: one line
naming the bootstrap servers and the reason, not librdkafka's 20 a second; `/readyz` false
saying why; one line when the broker answers again."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from packflow.runtime.processes import ReplicaProcess, read_events
from tests.conftest import TopicFactory
from tests.integration.test_failure_paths import metrics_port, until_answer
from tests.runtime_io import Pipeline, Run, demo_records, endpoint, make_pipeline, produce_records
from tests.tcp_proxy import TcpProxy

ECHO = "packflow.examples.echo:Backend"
PLANTED = "planted-" + "".join(reversed("terces"))
# SASL credentials a replica is given, as an operator gives them: never in its log.
SASL = {
    "PACKFLOW_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PACKFLOW_KAFKA__SASL_MECHANISM": "PLAIN",
    "PACKFLOW_KAFKA__SASL_USERNAME": "alice",
    "PACKFLOW_KAFKA__SASL_PASSWORD": PLANTED,
}


def test_20_s_against_a_closed_port_is_at_most_5_lines_naming_the_address(
    tmp_path: Path,
) -> None:
    closed = socket.socket()  # bound, never listening: every connect to it is refused
    closed.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{closed.getsockname()[1]}"
    log = tmp_path / "run.log"
    run = ReplicaProcess(
        ["--bootstrap-servers", address, "--backend", ECHO, "--metrics-port", "0"], log, env=SASL
    )
    try:
        port = metrics_port(run)
        (line,) = run.wait_for("broker_unreachable", timeout=30)
        body = until_answer(run, port, "/readyz", 503)
        time.sleep(20)
        lines = log.read_bytes().splitlines()
    finally:
        run.terminate()
        closed.close()
    assert len(lines) <= 5, b"\n".join(lines).decode()
    assert [e["event"] for e in read_events(log)][: len(lines)] == [
        "metrics_serving",
        "backend_initialized",
        "replica_started",
        "broker_unreachable",
    ]
    assert line["bootstrap_servers"] == address
    assert line["reason"] == "refused"
    assert f"Connect to ipv4#{address} failed: Connection refused" in line["error"]
    assert body.startswith(f"brokers {address} unreachable (refused) for ")
    assert not read_events(log, "librdkafka")
    assert PLANTED not in log.read_text()


def test_a_broker_that_comes_back_is_one_line_and_records_flow(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    host, _, real_port = kafka_bootstrap.rpartition(":")
    proxy = TcpProxy((host, int(real_port)))  # not started: refused
    real = make_pipeline(kafka_bootstrap, make_topic, partitions=1)
    away = Pipeline(f"127.0.0.1:{proxy.port}", real.input, real.results, real.dead_letters,
                    real.group)  # fmt: skip
    produce_records(real, demo_records(10))
    run = Run(away, tmp_path / "run.log", "--backend", ECHO, "--metrics-port", "0")
    try:
        port = metrics_port(run)
        run.wait_for("broker_unreachable", timeout=30)
        assert endpoint(port, "/readyz")[0] == 503
        proxy.start()
        (back,) = run.wait_for("broker_reachable", timeout=30)
        run.wait_for_replicas(1)
        until_answer(run, port, "/readyz", 200)
    finally:
        run.terminate()
        proxy.stop()
    assert back["bootstrap_servers"] == away.bootstrap
    assert len(run.events("broker_unreachable")) == 1
    assert len(run.events("broker_reachable")) == 1
