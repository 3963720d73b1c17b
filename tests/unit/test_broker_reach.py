"""Brokers that are away (issue 16, item 6): librdkafka's failed connects collapsed into one
line, a reminder per 30 s, `/readyz` saying why, one line when they answer again
(consumer/broker_reach.py, and its use by kafka_logs and Probes)."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from packflow.runtime.broker_reach import BrokerReach, classify, is_connect_failure
from packflow.runtime.kafka_logs import kafka_logger
from packflow.runtime.metrics import Probes
from tests.unit.test_replica_parts import Log

REFUSED = (
    "FAIL [rdkafka#producer-2] [thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to "
    "ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
)
REFUSED_TEXT = REFUSED.split("]: ", 1)[1]


class Cluster:
    """A probe: raises while the cluster is away."""

    def __init__(self) -> None:
        self.up = False
        self.probes = 0

    def __call__(self) -> None:
        self.probes += 1
        if not self.up:
            raise RuntimeError("KafkaError{code=_TRANSPORT}")


def reach_at(now: list[float]) -> tuple[BrokerReach, Log, Cluster]:
    log, cluster = Log(), Cluster()
    return BrokerReach("127.0.0.1:9", log, cluster, clock=lambda: now[0]), log, cluster


DNS = (
    "FAIL [c] [thrd:x]: kafka.nowhere:9092/bootstrap: Failed to resolve 'kafka.nowhere:9092': "
    "Name or service not known (after 3ms in state CONNECT)"
)
TLS = (
    "FAIL [c] [thrd:x]: sasl_ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed"
)
SASL = (
    "FAIL [c] [thrd:x]: sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
)
TIMED_OUT = "FAIL [c] [thrd:x]: b:9092/1: Connection setup timed out in state CONNECT"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (REFUSED, "refused"),
        (DNS, "DNS"),
        (TLS, "TLS"),
        (SASL, "authentication"),
        (TIMED_OUT, "timed out"),
    ],
)
def test_the_reason_is_named(text: str, reason: str) -> None:
    assert is_connect_failure(text)
    assert classify(text) == reason


def test_an_idle_connection_closed_is_not_a_failure_to_reach() -> None:
    assert not is_connect_failure(
        "FAIL [c] [thrd:b:9092/1]: b:9092/1: Disconnected (after 600012ms in state UP)"
    )
    assert not is_connect_failure("COMMITFAIL [c] [thrd:main]: Offset commit failed")


def test_one_line_then_one_reminder_per_30_s_then_one_line_when_back() -> None:
    now = [100.0]
    reach, log, cluster = reach_at(now)
    reach.tick()
    assert cluster.probes == 0  # nothing failed: no probe, no line
    for _ in range(22):  # librdkafka's second of failed connects
        reach.failed(REFUSED_TEXT)
    reach.tick()
    assert log.events == [] and cluster.probes == 0  # settling for a second
    now[0] = 101.0
    reach.tick()
    assert log.events == [
        (
            "error",
            "broker_unreachable",
            {
                "bootstrap_servers": "127.0.0.1:9",
                "reason": "refused",
                "error": REFUSED_TEXT,
                "consequence": "nothing is consumed or published until a broker answers; "
                "/readyz is false",
            },
        )
    ]
    # 29 s more of failures, a probe every 5 s: no line.
    for second in range(102, 131):
        now[0] = float(second)
        for _ in range(22):
            reach.failed(REFUSED_TEXT)
        reach.tick()
    assert len(log.events) == 1
    assert cluster.probes == 6  # at 101, 106, ... 126
    assert reach.reason() == (f"brokers 127.0.0.1:9 unreachable (refused) for 29s: {REFUSED_TEXT}")
    now[0] = 131.0
    reach.tick()
    assert log.events[1] == (
        "warning",
        "broker_still_unreachable",
        {
            "bootstrap_servers": "127.0.0.1:9",
            "reason": "refused",
            "error": REFUSED_TEXT,
            "away_s": 30,
            "failures": 29 * 22,
        },
    )
    cluster.up = True
    now[0] = 136.0
    reach.tick()
    assert log.events[2] == (
        "info",
        "broker_reachable",
        {"bootstrap_servers": "127.0.0.1:9", "away_s": 35},
    )
    assert reach.reason() is None
    now[0] = 200.0
    reach.tick()
    assert len(log.events) == 3


def test_a_failure_while_the_cluster_answers_is_one_line_per_30_s() -> None:
    now = [0.0]
    reach, log, cluster = reach_at(now)
    cluster.up = True  # one broker of three restarting: metadata still comes
    for second in range(60):
        now[0] = float(second)
        reach.failed(REFUSED_TEXT)
        reach.tick()
    assert [e for _, e, _ in log.events] == ["broker_connect_failed", "broker_connect_failed"]
    assert log.events[0][2]["reason"] == "refused"
    assert reach.reason() is None


def test_errors_of_the_clients_go_to_the_same_count() -> None:
    now = [0.0]
    reach, log, _ = reach_at(now)
    reach.kafka_error(KafkaError(KafkaError._TRANSPORT, "cut"))  # its FAIL line says more
    assert reach._since is None
    reach.kafka_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    reach.kafka_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))
    assert log.named("kafka_error") == [
        {"code": "TOPIC_AUTHORIZATION_FAILED", "error": "denied", "fatal": False}
    ]
    now[0] = 1.0
    reach.tick()
    assert log.named("broker_unreachable")[0]["error"] == "1/1 brokers are down"


def test_librdkafka_failure_lines_go_to_the_replica_not_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[str] = []
    logger = kafka_logger("test-reach", seen.append)
    try:
        logger.error(REFUSED)
        assert seen == [REFUSED_TEXT]
        assert "Connection refused" not in capsys.readouterr().err
    finally:
        kafka_logger("test-reach", None)
    assert logging.getLogger("packflow.librdkafka.test-reach").handlers


def test_readyz_says_why_while_the_brokers_are_away() -> None:
    probes = Probes(60.0, partitions=lambda: 0, fatal=lambda: None)
    probes.initialised = True
    assert probes.ready() == (False, "no partitions assigned\n")
    probes.unreachable = lambda: "brokers b:9 unreachable (refused) for 3s: x"
    assert probes.ready() == (False, "brokers b:9 unreachable (refused) for 3s: x\n")
