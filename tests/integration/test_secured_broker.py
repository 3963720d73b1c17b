"""A secured real broker (issue 16): SASL_SSL with SCRAM-SHA-512 and ACLs enforced, started
by `packflow kafka start --secure`. The application user has no rights until `packflow acls
--apply` grants exactly what a replica needs; with those, a replica answers every key once
under both guarantees."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported from cimpl
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from packflow.runtime.acls import Acl, create_acls, replica_acls
from packflow.runtime.broker import BrokerSettings, LocalCluster, free_port_block
from packflow.runtime.broker_security import ADMIN, APP_USER
from packflow.runtime.errors import TopicError
from packflow.runtime.status import group_state
from packflow.runtime.topics import admin_client
from tests.kafka_io import collect, distinct_keys
from tests.runtime_io import (
    PACKFLOW,
    Run,
    demo_records,
    endpoint,
    make_pipeline,
    produce_records,
    results_by_key,
)

ECHO = "packflow.examples.echo:Backend"
APP = f"User:{APP_USER}"
EVERY_ACL_OF_APP = AclBindingFilter(
    ResourceType.ANY,
    None,
    ResourcePatternType.ANY,
    APP,
    None,
    AclOperation.ANY,
    AclPermissionType.ANY,
)


@dataclass(frozen=True)
class Secured:
    cluster: LocalCluster
    started: subprocess.CompletedProcess[str]  # `packflow kafka start --secure`

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    def config(self, user: str) -> dict[str, str]:
        return self.cluster.client_config(user)

    def password(self, user: str) -> str:
        return self.cluster.security.password(user)


def packflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PACKFLOW, *args],
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="session")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A secured one-node cluster of this session, on its own free ports."""
    base = free_port_block(2)
    data = tmp_path_factory.mktemp("kafka-secured")
    settings = BrokerSettings(port=base, controller_port=base + 1, data_dir=data, secure=True)
    ports = ["--port", str(base), "--controller-port", str(base + 1)]
    started = packflow("kafka", "start", "--secure", *ports, "--data-dir", str(data))
    cluster = LocalCluster(settings)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Secured(cluster, started)
    finally:
        cluster.stop(delete_data=True)


def topic_factory(secured: Secured) -> Callable[..., str]:
    """Topics made by the admin (the application user may not)."""

    def make(partitions: int = 3, **config: str) -> str:
        name = f"secured-{uuid.uuid4().hex[:8]}"
        admin = admin_client(secured.bootstrap, secured.config(ADMIN))
        (future,) = admin.create_topics([NewTopic(name, partitions, 1, config=config)]).values()
        future.result(timeout=30)
        return name

    return make


def granted(secured: Secured) -> set[AclBinding]:
    """Every ACL of the application user."""
    admin = admin_client(secured.bootstrap, secured.config(ADMIN))
    return set(admin.describe_acls(EVERY_ACL_OF_APP).result(timeout=30))


def revoke_all(secured: Secured) -> None:
    admin = admin_client(secured.bootstrap, secured.config(ADMIN))
    for future in admin.delete_acls([EVERY_ACL_OF_APP]).values():
        future.result(timeout=30)


def kafka_flags(config: dict[str, str]) -> list[str]:
    """`--kafka KEY=VALUE` for every security setting; the password goes by environment."""
    flags = []
    for key, value in config.items():
        if key not in ("bootstrap.servers", "sasl.password"):
            flags += ["--kafka", f"{key}={value}"]
    return flags


def test_start_secure_prints_the_client_settings_never_a_password(secured: Secured) -> None:
    out = secured.started.stdout
    security = secured.cluster.security
    lines = out.splitlines()
    assert lines[-1] == secured.bootstrap
    for line in (
        f"  bootstrap.servers={secured.bootstrap}",
        "  security.protocol=SASL_SSL",
        "  sasl.mechanism=SCRAM-SHA-512",
        f"  sasl.username={APP_USER}",
        f"  ssl.ca.location={security.ca}",
        f"  sasl.password: in {security.password_file(APP_USER)}",
    ):
        assert line in lines, out
    assert str(security.password_file(ADMIN)) in out
    for user in (ADMIN, APP_USER, "keystore"):
        secret = security.password(user)
        assert len(secret) == 48
        assert secret not in out + secured.started.stderr
        assert stat.S_IMODE(security.password_file(user).stat().st_mode) == 0o600
    assert stat.S_IMODE(security.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(security.keystore.stat().st_mode) == 0o600
    (node,) = secured.cluster.nodes()
    assert stat.S_IMODE(node.properties.stat().st_mode) == 0o600  # the admin's password
    assert security.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    # `kafka status` reads the topics as the admin.
    shown = packflow("kafka", "status", "--data-dir", str(secured.cluster.data_dir))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "running" in shown.stdout


def test_without_acls_the_app_user_can_neither_read_nor_write(secured: Secured) -> None:
    topic = topic_factory(secured)(1)
    produce_records_to(secured, topic, 5)
    assert granted(secured) == set()
    app = secured.config(APP_USER)

    subscribed = Consumer(app | {"group.id": f"g-{uuid.uuid4().hex[:8]}"})
    subscribed.subscribe([topic])
    assigned = Consumer(app | {"group.id": f"g-{uuid.uuid4().hex[:8]}"})
    assigned.assign([TopicPartition(topic, 0, 0)])  # no group join, a fetch at once
    try:
        in_group = errors_of(subscribed)
        direct = errors_of(assigned)
    finally:
        subscribed.close()
        assigned.close()
    refused = {KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED}
    assert in_group and in_group <= refused, in_group
    assert direct and direct <= refused, direct

    reports: list[KafkaError | None] = []
    producer = Producer(app)
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: reports.append(err))
    assert producer.flush(30) == 0
    assert [e.code() if e else None for e in reports] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    # And the passwords are checked: a wrong one gets no metadata at all.
    wrong = secured.config(ADMIN) | {"sasl.password": "not-" + secured.password(ADMIN)}
    with pytest.raises(KafkaException):
        admin_client(secured.bootstrap, wrong).list_topics(timeout=5)


def produce_records_to(secured: Secured, topic: str, count: int) -> None:
    producer = Producer(secured.config(ADMIN))
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(), key=f"k{i}".encode())
    assert producer.flush(30) == 0


def errors_of(consumer: Consumer, seconds: float = 10.0) -> set[int]:
    """The error codes `consume` returns within `seconds`; no record may arrive."""
    codes: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not codes:
        for msg in consumer.consume(10, timeout=0.5):
            error = msg.error()
            assert error is not None, f"read a record: {msg.value()!r}"
            codes.add(error.code())
    return codes


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_replica_with_exactly_the_acls_granted_answers_10k_keys_once(
    secured: Secured, guarantee: str, tmp_path: Path
) -> None:
    admin = secured.config(ADMIN)
    app = secured.config(APP_USER)
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=6)
    assert granted(secured) == set()
    admin_password = {"PACKFLOW_KAFKA__SASL_PASSWORD": secured.password(ADMIN)}
    applied = packflow(
        "acls",
        "--apply",
        "--principal",
        APP_USER,
        "--guarantee",
        guarantee,
        *pipeline.flags(),
        *kafka_flags(admin),
        env=admin_password,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert secured.password(ADMIN) not in applied.stdout + applied.stderr
    wanted = replica_acls(
        input_topic=pipeline.input,
        results_topic=pipeline.results,
        dead_letter_topic=pipeline.dead_letters,
        group=pipeline.group,
        guarantee=guarantee,  # type: ignore[arg-type]
        principal=APP_USER,
    )
    try:
        assert granted(secured) == {acl.binding() for acl in wanted}
        assert applied.stdout.splitlines()[: len(wanted)] == [str(acl) for acl in wanted]

        records = demo_records(10_000, seed=16)
        produce_records(pipeline, records, config=admin)
        log = tmp_path / "run.log"
        run = Run(
            pipeline,
            log,
            "--backend",
            ECHO,
            "--guarantee",
            guarantee,
            *kafka_flags(app),
            env={"PACKFLOW_KAFKA__SASL_PASSWORD": secured.password(APP_USER)},
        )
        try:
            got = collect(
                secured.bootstrap,
                pipeline.results,
                distinct_keys(10_000),
                timeout=240,
                config=admin,  # read_committed
            )
        finally:
            code = run.terminate()
        dead = collect(
            secured.bootstrap, pipeline.dead_letters, lambda _: True, settle=1, config=admin
        )
    finally:
        revoke_all(secured)
    assert code == 0, log.read_text()[-3000:]
    by_key = results_by_key(got)
    assert sorted(by_key) == sorted(r["id"] for r in records)
    assert [k for k, n in Counter(m.key() for m in got).items() if n > 1] == []
    assert len(got) == 10_000
    assert dead == []
    (stopped,) = run.events("replica_stopped")
    assert stopped["results"] == 10_000
    text = log.read_text()
    assert secured.password(APP_USER) not in text
    assert "AUTHORIZATION" not in text.upper()


def test_produce_results_status_and_dlq_work_with_their_documented_acls(
    secured: Secured, tmp_path: Path
) -> None:
    """The application user, with only what docs/SECURITY.md lists for each command, runs
    `produce`, `results`, `status` and `dlq list` through `--kafka` settings and the password
    by environment; a replica (run as the admin) answers in between. No output holds the
    password."""
    admin = secured.config(ADMIN)
    app = secured.config(APP_USER)
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=3)
    documented = [
        Acl(APP, "Write", "topic", pipeline.input),  # produce
        Acl(APP, "Describe", "topic", pipeline.input),  # produce, status
        Acl(APP, "Read", "topic", pipeline.results),  # results
        Acl(APP, "Describe", "topic", pipeline.results),
        Acl(APP, "Read", "topic", pipeline.dead_letters),  # dlq list
        Acl(APP, "Describe", "topic", pipeline.dead_letters),
        Acl(APP, "Describe", "group", "packflow-reader-", "prefixed"),  # the readers
        Acl(APP, "Describe", "group", pipeline.group),  # status
    ]
    create_acls(secured.bootstrap, documented, admin)
    secret = secured.password(APP_USER)
    env = {"PACKFLOW_KAFKA__SASL_PASSWORD": secret}
    outputs = []

    def as_app(*args: str) -> subprocess.CompletedProcess[str]:
        done = packflow(*args, *pipeline.flags()[:2], *kafka_flags(app), env=env)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        as_app("produce", "--input-topic", pipeline.input, "--generate", "200", "--seed", "3")
        produce_to(secured, pipeline.input, [(b"corrupt-1", b"\x00not avro")])
        run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO, *kafka_flags(admin),
                  env={"PACKFLOW_KAFKA__SASL_PASSWORD": secured.password(ADMIN)})  # fmt: skip
        try:
            got = collect(secured.bootstrap, pipeline.results, distinct_keys(200), config=admin)
            until_committed(secured, pipeline, 201)
        finally:
            assert run.terminate() == 0
        read = as_app("results", "--results-topic", pipeline.results, "--dedup")
        status = as_app("status", "--json", "--group-id", pipeline.group,
                        "--input-topic", pipeline.input)  # fmt: skip
        letters = as_app("dlq", "list", "--dead-letter-topic", pipeline.dead_letters)
    finally:
        revoke_all(secured)
    keys = sorted(json.loads(line)["key"] for line in read.stdout.splitlines())
    assert keys == sorted(results_by_key(got)) and len(keys) == 200
    state = json.loads(status.stdout)
    assert state["lag"] == 0
    assert [p["committed"] for p in state["partitions"]] == [p["end"] for p in state["partitions"]]
    assert "decode" in letters.stdout and "DecodeError" in letters.stdout
    for out in outputs:
        assert secret not in out
    assert secret not in (tmp_path / "run.log").read_text()


def produce_to(secured: Secured, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(secured.config(ADMIN))
    for key, value in messages:
        producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0


def until_committed(secured: Secured, pipeline: Any, records: int, timeout: float = 60) -> None:
    """Until the group has committed `records` input records (read as the admin)."""
    deadline = time.monotonic() + timeout
    while True:
        state = group_state(pipeline.bootstrap, pipeline.group, pipeline.input,
                            config=secured.config(ADMIN))  # fmt: skip
        if sum(p.committed or 0 for p in state.partitions) >= records:
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.5)


def _committed(secured: Secured, pipeline: Any) -> list[int | None]:
    """The group's committed offsets (the coordinator of a group never seen may be loading
    for a few seconds after the broker's start: asked again)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            state = group_state(pipeline.bootstrap, pipeline.group, pipeline.input,
                                config=secured.config(ADMIN))  # fmt: skip
            return [p.committed for p in state.partitions]
        except TopicError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_a_replica_without_credentials_stops_at_once_with_one_line(
    secured: Secured, tmp_path: Path
) -> None:
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=3)
    ca = secured.cluster.security.ca
    no_user = ["--kafka", "security.protocol=SASL_SSL", "--kafka", "sasl.mechanism=SCRAM-SHA-512",
               "--kafka", f"ssl.ca.location={ca}"]  # fmt: skip
    log = tmp_path / "run.log"
    run = Run(pipeline, log, "--backend", ECHO, *no_user)
    assert run.proc.wait(60) == 1
    errors = [line for line in _lines(log) if "sasl.username" in line]
    assert len(errors) == 1, log.read_text()
    assert "Kafka client settings refused" in errors[0]
    assert "Traceback" not in log.read_text()
    assert _committed(secured, pipeline) == [None, None, None]


@pytest.mark.parametrize("refusal", ["wrong password", "untrusted certificate"])
def test_a_replica_refused_by_the_broker_waits_with_one_line_naming_why(
    secured: Secured, tmp_path: Path, refusal: str
) -> None:
    """A wrong password or a broker certificate the client cannot trust: one line within
    10 s naming the bootstrap servers and the reason, /readyz 503 saying it, nothing committed,
    and no more lines for the rest of 20 s (the reminder comes every 30 s)."""
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=3)
    produce_records(pipeline, demo_records(300), config=secured.config(ADMIN))
    app = secured.config(APP_USER)
    password = secured.password(APP_USER)
    if refusal == "wrong password":
        password, reason = "not-" + password, "authentication"
    else:
        del app["ssl.ca.location"]  # the system's CAs: not the project's own
        reason = "TLS"
    log = tmp_path / "run.log"
    run = Run(pipeline, log, "--backend", ECHO, "--metrics-port", "0", *kafka_flags(app),
              env={"PACKFLOW_KAFKA__SASL_PASSWORD": password})  # fmt: skip
    try:
        (serving,) = run.wait_for("metrics_serving", timeout=30)
        started = time.monotonic()
        (away,) = run.wait_for("broker_unreachable", timeout=10)
        assert away["reason"] == reason, away
        assert away["bootstrap_servers"] == secured.bootstrap
        status, why = endpoint(serving["port"], "/readyz")
        assert status == 503 and secured.bootstrap in why and reason in why, why
        time.sleep(max(0.0, 20 - (time.monotonic() - started)))
        assert len(_lines(log)) <= 5, log.read_text()
        assert run.proc.poll() is None  # waiting, not crash-looping
    finally:
        assert run.terminate() == 0
    assert _committed(secured, pipeline) == [None, None, None]
    assert password not in log.read_text()


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_without_write_on_the_results_topic_a_replica_stops_uncommitted_then_answers_all(
    secured: Secured, tmp_path: Path, guarantee: str
) -> None:
    """One line naming the topic and the operation, no worker-bug traceback, no line per
    record; nothing committed past what was published; once Write is granted, a new run
    answers every record, once."""
    admin = secured.config(ADMIN)
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=3)
    records = demo_records(2_000, seed=5)
    produce_records(pipeline, records, config=admin)
    every = replica_acls(input_topic=pipeline.input, results_topic=pipeline.results,
                         dead_letter_topic=pipeline.dead_letters, group=pipeline.group,
                         guarantee=guarantee, principal=APP_USER)  # fmt: skip  # type: ignore[arg-type]
    write = [a for a in every if a.operation == "Write" and a.name == pipeline.results]
    assert len(write) == 1
    create_acls(secured.bootstrap, [a for a in every if a not in write], admin)
    env = {"PACKFLOW_KAFKA__SASL_PASSWORD": secured.password(APP_USER)}
    flags = ["--backend", ECHO, "--guarantee", guarantee, *kafka_flags(secured.config(APP_USER))]
    try:
        log = tmp_path / "refused.log"
        refused = Run(pipeline, log, *flags, env=env)
        assert refused.proc.wait(90) == 1
        (line,) = refused.events("not_authorized")
        assert pipeline.results in line["topics"] and line["operation"] == "Write", line
        text = log.read_text()
        assert "worker_failed" not in text and "Traceback" not in text
        assert len(refused.events("delivery_failed")) == 0
        (stopped,) = refused.events("replica_stopped")
        assert stopped["results"] == 0  # none was delivered
        assert "Write" in stopped["fatal"]
        assert all(c in (None, 0) for c in _committed(secured, pipeline))
        create_acls(secured.bootstrap, write, admin)  # the operator grants it
        again = Run(pipeline, tmp_path / "granted.log", *flags, env=env)
        try:
            got = collect(secured.bootstrap, pipeline.results, distinct_keys(2_000),
                          timeout=120, config=admin)  # fmt: skip
        finally:
            assert again.terminate() == 0
    finally:
        revoke_all(secured)
    assert sorted(results_by_key(got)) == sorted(r["id"] for r in records)
    assert len(got) == 2_000


@pytest.mark.parametrize("missing", ["group", "topic"])
def test_without_read_on_the_group_or_the_input_a_replica_stops_with_one_line(
    secured: Secured, tmp_path: Path, missing: str
) -> None:
    """No Read on the group (or on the input topic): one `not_authorized` line naming it and
    the operation, a stop with nothing committed; no line per retry."""
    admin = secured.config(ADMIN)
    pipeline = make_pipeline(secured.bootstrap, topic_factory(secured), partitions=3)
    produce_records(pipeline, demo_records(200), config=admin)
    every = replica_acls(input_topic=pipeline.input, results_topic=pipeline.results,
                         dead_letter_topic=pipeline.dead_letters, group=pipeline.group,
                         guarantee="at-least-once", principal=APP_USER)  # fmt: skip
    name = pipeline.group if missing == "group" else pipeline.input
    read = [a for a in every if a.operation == "Read" and a.name == name]
    assert len(read) == 1
    create_acls(secured.bootstrap, [a for a in every if a not in read], admin)
    log = tmp_path / "run.log"
    try:
        run = Run(pipeline, log, "--backend", ECHO, *kafka_flags(secured.config(APP_USER)),
                  env={"PACKFLOW_KAFKA__SASL_PASSWORD": secured.password(APP_USER)})  # fmt: skip
        assert run.proc.wait(60) == 1, log.read_text()[-2000:]
    finally:
        revoke_all(secured)
    (line,) = run.events("not_authorized")
    assert line[missing] == name and line["operation"] == "Read", line
    assert run.events("consumer_error") == []
    assert _committed(secured, pipeline) == [None, None, None]
