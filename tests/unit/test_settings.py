from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import pytest

from packflow.runtime.broker_settings import BrokerSettings
from packflow.runtime.errors import SettingsWarning
from packflow.runtime.settings import (
    RuntimeSettings,
    SettingsError,
    consumer_config,
    env_name,
    load_settings,
    producer_config,
    replica_instance,
    unknown_variables,
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "packflow.yaml").write_text(
        "name: p\ninference_backend: packflow.examples.echo:Backend\nloader: module\n"
        "runtime:\n  group_id: from-yaml\n  max_batch_size: 64\n"
        "  consumer_kafka:\n    session.timeout.ms: 7000\n"
    )
    for name in list(os.environ):
        if name.upper().startswith("PACKFLOW_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_flags_over_environment_over_project_over_defaults(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(project=project).max_batch_size == 64
    monkeypatch.setenv("PACKFLOW_MAX_BATCH_SIZE", "99")
    monkeypatch.setenv("PACKFLOW_PRODUCER_KAFKA__LINGER_MS", "20")
    settings = load_settings(project=project, group_id="flag")
    assert (settings.group_id, settings.max_batch_size, settings.max_wait_ms) == ("flag", 99, 50)
    assert settings.consumer_kafka == {"session.timeout.ms": "7000"}
    assert settings.producer_kafka == {"linger.ms": "20"}
    assert consumer_config(settings)["session.timeout.ms"] == "7000"
    assert producer_config(settings)["linger.ms"] == "20"


def test_each_passthrough_reaches_only_the_clients_it_names(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys a guess by prefix used to route wrongly (queued.min.messages is the consumer's).
    monkeypatch.setenv("PACKFLOW_KAFKA__CLIENT_RACK", "rack-1")
    monkeypatch.setenv("PACKFLOW_CONSUMER_KAFKA__QUEUED_MIN_MESSAGES", "1000")
    settings = load_settings(
        project=project,
        kafka={"socket.keepalive.enable": "true"},
        producer_kafka={"batch.num.messages": "500"},
    )
    consumer, producer = consumer_config(settings), producer_config(settings)
    both = {"client.rack": "rack-1", "socket.keepalive.enable": "true"}
    assert both.items() <= consumer.items() and both.items() <= producer.items()
    assert consumer["queued.min.messages"] == "1000"  # env
    assert consumer["session.timeout.ms"] == "7000"  # project
    assert "queued.min.messages" not in producer and "session.timeout.ms" not in producer
    assert producer["batch.num.messages"] == "500"
    assert "batch.num.messages" not in consumer
    # Packflow's defaults are there, and a passthrough may override them on purpose.
    assert producer["linger.ms"] == 5
    assert producer_config(load_settings(producer_kafka={"linger.ms": "1"}))["linger.ms"] == "1"


def test_a_project_is_found_in_the_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert load_settings().group_id == "from-yaml"


def test_invalid_and_unknown_settings_name_their_fields(project: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(project=project, max_batch_size=0, guarantee="twice", colour="red")
    message = str(caught.value)
    assert "max_batch_size: Input should be greater than or equal to 1 (got 0)" in message
    assert "guarantee: Input should be 'at-least-once' or 'exactly-once' (got 'twice')" in message
    assert "colour: Extra inputs are not permitted" in message
    with pytest.raises(SettingsError, match="codec 'confluent' needs registry_url"):
        load_settings(codec="confluent")


def test_exactly_once_gives_each_replica_a_stable_unique_transactional_id() -> None:
    settings = load_settings(guarantee="exactly-once", group_id="g")
    host = socket.gethostname()
    assert replica_instance(settings, 2, owner_pid=41) == f"{host}-41-2"
    assert producer_config(settings, "x-1")["transactional.id"] == "packflow-g-x-1"
    static = load_settings(guarantee="exactly-once", group_id="g", group_instance_id="pod-a")
    assert replica_instance(static, 0, owner_pid=41) == "pod-a-0"
    assert consumer_config(static, 0)["group.instance.id"] == "pod-a-0"
    assert "transactional.id" not in producer_config(load_settings())


def test_every_setting_has_a_variable_of_its_name(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PACKFLOW_<FIELD> sets each field (list and mapping settings take JSON)."""
    for field, info in RuntimeSettings.model_fields.items():
        if field == "project":
            value, expected = str(project), project
        elif info.annotation is bool:
            value, expected = "true", True
        elif field.endswith("kafka") or field in ("backend_config", "registry_config"):
            value, expected = '{"x.y": "1"}', {"x.y": "1"}
        elif field in ("known_schemas", "retry_permanent_errors"):
            value, expected = '["text_input"]', ["text_input"]
        else:
            value, expected = SAMPLES[field]
        monkeypatch.setenv(env_name(field), value)
        if field == "codec":
            monkeypatch.setenv("PACKFLOW_REGISTRY_URL", "http://registry:8081")
        settings = load_settings()
        assert getattr(settings, field) == expected, field
        monkeypatch.delenv(env_name(field))
        monkeypatch.delenv("PACKFLOW_REGISTRY_URL", raising=False)


# A value for each scalar setting other than its default, as a variable holds it: a new
# setting fails the tests above until it has one here.
SAMPLES: dict[str, tuple[str, object]] = {
    "backend": ("m:B", "m:B"),
    "bootstrap_servers": ("k:1", "k:1"),
    "group_id": ("g", "g"),
    "group_instance_id": ("pod", "pod"),
    "input_topic": ("in", "in"),
    "results_topic": ("out", "out"),
    "dead_letter_topic": ("dead", "dead"),
    "max_batch_size": ("7", 7),
    "max_wait_ms": ("8", 8),
    "guarantee": ("exactly-once", "exactly-once"),
    "id_field": ("uid", "uid"),
    "codec": ("confluent", "confluent"),
    "input_schema": ("text_input", "text_input"),
    "writer_schema": ("demo_input", "demo_input"),
    "registry_url": ("http://r:8081", "http://r:8081"),
    "result_format": ("avro", "avro"),
    "metrics_port": ("9100", 9100),
    "metrics_host": ("127.0.0.1", "127.0.0.1"),
    "stuck_after_s": ("5.5", 5.5),
    "dedup_max_keys": ("9", 9),
    "dedup_ttl_s": ("10.5", 10.5),
    "max_queued_per_partition": ("11", 11),
    "retry_attempts": ("5", 5),
    "retry_backoff_ms": ("14", 14),
    "retry_backoff_max_ms": ("15", 15),
    "registry_backoff_ms": ("250", 250),
    "registry_backoff_max_ms": ("5000", 5000),
    "commit_interval_ms": ("12", 12),
    "replicas": ("3", 3),
    "shutdown_timeout_s": ("13.5", 13.5),
    "max_crash_attempts": ("5", 5),
    "execute_timeout_s": ("2.5", 2.5),
}


def test_an_execute_timeout_needs_the_crash_quarantine() -> None:
    assert RuntimeSettings().execute_timeout_s is None  # off by default
    assert RuntimeSettings().max_crash_attempts == 3
    with pytest.raises(SettingsError, match="execute_timeout_s needs max_crash_attempts"):
        load_settings(execute_timeout_s=5, max_crash_attempts=0)
    with pytest.raises(SettingsError, match="execute_timeout_s"):
        load_settings(execute_timeout_s=0)


def test_an_unknown_variable_warns_naming_the_closest_setting(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {
        "PACKFLOW_SCHEMA": "text_input",  # the mistake that dead-lettered a whole stream
        "PACKFLOW_GROUPID": "g",
        "PACKFLOW_KAFKA_LINGER_MS": "5",  # one underscore short of librdkafka's
        "PACKFLOW_LOG_LEVLE": "debug",
        # Known: settings, nested passthrough, the broker's (new and old), the SDK's.
        "PACKFLOW_INPUT_SCHEMA": "text_input",
        "PACKFLOW_KAFKA__LINGER_MS": "5",
        "PACKFLOW_BACKEND_CONFIG__THRESHOLD": "0.5",
        "PACKFLOW_BROKER_PORT": "9092",
        "PACKFLOW_KAFKA_PORT": "9092",
        "PACKFLOW_LOG_FORMAT": "json",
        "PACKFLOW_CACHE_DIR": "/tmp",
        "OTHER_SCHEMA": "x",
    }
    assert unknown_variables(environ) == [
        "PACKFLOW_GROUPID names no setting and is ignored; did you mean PACKFLOW_GROUP_ID?",
        (
            "PACKFLOW_KAFKA_LINGER_MS names no setting and is ignored; did you mean "
            "PACKFLOW_KAFKA__LINGER_MS (librdkafka)?"
        ),
        "PACKFLOW_LOG_LEVLE names no setting and is ignored; did you mean PACKFLOW_LOG_LEVEL?",
        "PACKFLOW_SCHEMA names no setting and is ignored; did you mean PACKFLOW_INPUT_SCHEMA?",
    ]
    monkeypatch.setenv("PACKFLOW_SCHEMA", "text_input")
    with pytest.warns(SettingsWarning) as caught:
        load_settings(project=project)
    assert [str(w.message) for w in caught] == [
        "PACKFLOW_SCHEMA names no setting and is ignored; did you mean PACKFLOW_INPUT_SCHEMA?"
    ]


def test_a_variable_that_is_not_json_is_a_settings_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKFLOW_KNOWN_SCHEMAS", "a,b")
    with pytest.raises(SettingsError, match='field "known_schemas".*holds JSON'):
        load_settings(project=project)


def test_the_broker_reads_packflow_broker_and_its_old_prefix_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACKFLOW_BROKER_PORT", "9300")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn of nothing
        assert BrokerSettings().port == 9300
    monkeypatch.setenv("PACKFLOW_KAFKA_PORT", "9400")  # new over old
    monkeypatch.setenv("PACKFLOW_KAFKA_CONTROLLER_PORT", "9500")
    with pytest.warns(SettingsWarning) as caught:
        settings = BrokerSettings()
    assert (settings.port, settings.controller_port) == (9300, 9500)
    assert sorted(str(w.message) for w in caught) == [
        "PACKFLOW_KAFKA_CONTROLLER_PORT is deprecated: name it PACKFLOW_BROKER_CONTROLLER_PORT",
        "PACKFLOW_KAFKA_PORT is deprecated: name it PACKFLOW_BROKER_PORT",
    ]
    # librdkafka's PACKFLOW_KAFKA__ variables are none of the broker's (nor old names).
    monkeypatch.delenv("PACKFLOW_KAFKA_PORT")
    monkeypatch.delenv("PACKFLOW_KAFKA_CONTROLLER_PORT")
    monkeypatch.setenv("PACKFLOW_KAFKA__LINGER_MS", "5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BrokerSettings().controller_port == 9192
