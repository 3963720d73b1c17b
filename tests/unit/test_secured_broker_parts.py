"""The secured local broker's server properties and the ACLs of a replica, without a broker
(tests/integration/test_secured_broker.py runs both on one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from packflow.runtime.acls import Acl, principal_of, replica_acls, transactional_id_prefix
from packflow.runtime.broker import BrokerSettings, LocalCluster, Node, server_properties
from packflow.runtime.broker_security import ListenerSecurity, SecurityFiles
from packflow.runtime.cli import app
from packflow.runtime.errors import BrokerError
from packflow.runtime.settings import RuntimeSettings, producer_config

NODE = Node(0, 19092, 19192, Path("/data/node-0"))
VOTERS = "0@127.0.0.1:19192"
SECURITY = ListenerSecurity(Path("/s/broker.p12"), "storepw", Path("/s/ca.pem"), "adminpw")


def parse(text: str) -> dict[str, str]:
    lines = text.splitlines()
    pairs = [line.split("=", 1) for line in lines]
    assert len({k for k, _ in pairs}) == len(lines)  # no key twice
    return dict(pairs)  # type: ignore[arg-type]


def test_plain_properties_are_plaintext_with_no_authorizer() -> None:
    props = parse(server_properties(NODE, VOTERS, 1, {}))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19192"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert not {k for k in props if k.startswith(("ssl.", "sasl.", "listener.name."))}
    assert "authorizer.class.name" not in props
    assert "super.users" not in props


def test_secure_properties_serve_sasl_ssl_scram_with_the_standard_authorizer() -> None:
    plain = parse(server_properties(NODE, VOTERS, 1, {}))
    props = parse(server_properties(NODE, VOTERS, 1, {}, SECURITY))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19192"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19092"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    added = {k: v for k, v in props.items() if k not in plain}
    assert added == {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="admin" password="adminpw";'
        ),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": "/s/broker.p12",
        "ssl.keystore.password": "storepw",
        "ssl.key.password": "storepw",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/s/ca.pem",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": "User:admin;User:ANONYMOUS",
    }
    # Everything else is the plain cluster's, and extra properties still come last.
    same = {k for k in plain if not k.startswith(("listener", "advertised", "inter.broker"))}
    assert {k: props[k] for k in same} == {k: plain[k] for k in same}
    extra = parse(server_properties(NODE, VOTERS, 1, {"super.users": "User:x"}, SECURITY))
    assert extra["super.users"] == "User:x"


def acl_rows(acls: list[Acl]) -> list[tuple[str, str, str, str, str]]:
    return [(a.principal, a.operation, a.resource, a.name, a.pattern) for a in acls]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_replica_needs_read_on_input_and_group_write_on_outputs(guarantee: str) -> None:
    acls = replica_acls(
        input_topic="in",
        results_topic="out",
        dead_letter_topic="dlq",
        group="g",
        guarantee=guarantee,  # type: ignore[arg-type]
        principal="app",
    )
    expected = [
        ("User:app", "Read", "topic", "in", "literal"),
        ("User:app", "Describe", "topic", "in", "literal"),
        ("User:app", "Read", "group", "g", "literal"),
        ("User:app", "Describe", "group", "g", "literal"),
        ("User:app", "Write", "topic", "out", "literal"),
        ("User:app", "Describe", "topic", "out", "literal"),
        ("User:app", "DescribeConfigs", "topic", "out", "literal"),
        ("User:app", "Write", "topic", "dlq", "literal"),
        ("User:app", "Describe", "topic", "dlq", "literal"),
        ("User:app", "DescribeConfigs", "topic", "dlq", "literal"),
    ]
    if guarantee == "exactly-once":
        expected += [
            ("User:app", "Write", "transactional-id", "packflow-g-", "prefixed"),
            ("User:app", "Describe", "transactional-id", "packflow-g-", "prefixed"),
        ]
    assert acl_rows(acls) == expected
    # No IdempotentWrite, nothing on the cluster (KIP-679).
    assert all(a.resource != "cluster" for a in acls)  # type: ignore[comparison-overlap]
    assert len({a.binding() for a in acls}) == len(acls)


def test_the_transactional_id_prefix_is_what_the_replicas_use() -> None:
    settings = RuntimeSettings(guarantee="exactly-once", group_id="grp")
    for instance in ("0", "host-123-2", "static-1"):
        tid = producer_config(settings, instance)["transactional.id"]
        assert tid.startswith(transactional_id_prefix("grp"))
        assert tid == transactional_id_prefix("grp") + instance


def test_principals_and_printing() -> None:
    assert principal_of("packflow") == "User:packflow"
    assert principal_of("User:x") == "User:x"
    acl = Acl("User:app", "Write", "transactional-id", "packflow-g-", "prefixed")
    assert str(acl) == "ALLOW User:app Write on transactional-id packflow-g-*"


def test_a_cluster_is_secured_or_not_for_its_life(tmp_path: Path) -> None:
    plain = BrokerSettings(port=19092, controller_port=19192, data_dir=tmp_path)
    (tmp_path / "cluster.json").write_text(
        json.dumps({"cluster_id": "x", "nodes": 1, "port": 19092, "controller_port": 19192})
    )
    assert not LocalCluster(plain).secure
    assert LocalCluster(plain).client_config() == {"bootstrap.servers": "127.0.0.1:19092"}
    secure = plain.model_copy(update={"secure": True})
    with pytest.raises(BrokerError, match=r"holds a cluster with secure=False"):
        LocalCluster(secure).start()  # refused before Java or a port is looked at
    layout = json.loads((tmp_path / "cluster.json").read_text()) | {"secure": True}
    (tmp_path / "cluster.json").write_text(json.dumps(layout))
    assert LocalCluster(plain).secure  # the recorded layout wins: `stop`, `status` need no flag
    with pytest.raises(BrokerError, match=r"holds a cluster with secure=True"):
        LocalCluster(plain).start()


def test_client_config_of_a_secured_cluster_logs_in_as_the_user(tmp_path: Path) -> None:
    security = SecurityFiles(tmp_path)
    security.dir.mkdir()
    for user, secret in (("admin", "a" * 48), ("packflow", "p" * 48)):
        security.password_file(user).write_text(secret + "\n")
    assert security.client_config("127.0.0.1:1", "packflow") == {
        "bootstrap.servers": "127.0.0.1:1",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "packflow",
        "sasl.password": "p" * 48,
        "ssl.ca.location": str(tmp_path / "security" / "ca.pem"),
    }
    assert security.scram_arguments() == [
        "--add-scram",
        f"SCRAM-SHA-512=[name=admin,password={'a' * 48}]",
        "--add-scram",
        f"SCRAM-SHA-512=[name=packflow,password={'p' * 48}]",
    ]
    with pytest.raises(BrokerError, match="no user 'bob'"):
        security.client_config("127.0.0.1:1", "bob")


def test_secure_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKFLOW_BROKER_SECURE", "true")
    assert BrokerSettings().secure
    monkeypatch.delenv("PACKFLOW_BROKER_SECURE")
    assert not BrokerSettings().secure


def test_packflow_acls_prints_and_touches_nothing_without_apply() -> None:
    # A closed port: printing must not need a broker.
    args = ["acls", "--principal", "app", "--bootstrap-servers", "127.0.0.1:9"]
    args += ["--input-topic", "in", "--results-topic", "out", "--dead-letter-topic", "dlq"]
    args += ["--group-id", "g", "--guarantee", "exactly-once"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = replica_acls(
        input_topic="in",
        results_topic="out",
        dead_letter_topic="dlq",
        group="g",
        guarantee="exactly-once",
        principal="app",
    )
    assert result.output.splitlines() == [str(a) for a in expected]
