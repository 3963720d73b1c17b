from __future__ import annotations

import socket
from pathlib import Path

import pytest

from consumer.settings import (
    SettingsError,
    consumer_config,
    load_settings,
    producer_config,
    replica_instance,
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "packflow.yaml").write_text(
        "name: p\ninference_backend: backends.echo:Backend\nloader: module\n"
        "runtime:\n  group_id: from-yaml\n  max_batch_size: 64\n"
        "  kafka:\n    session.timeout.ms: 7000\n"
    )
    for name in ("PACKFLOW_MAX_BATCH_SIZE", "PACKFLOW_GROUP_ID", "PACKFLOW_KAFKA__LINGER_MS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_flags_over_environment_over_project_over_defaults(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(project=project).max_batch_size == 64
    monkeypatch.setenv("PACKFLOW_MAX_BATCH_SIZE", "99")
    monkeypatch.setenv("PACKFLOW_KAFKA__LINGER_MS", "20")
    settings = load_settings(project=project, group_id="flag")
    assert (settings.group_id, settings.max_batch_size, settings.max_wait_ms) == ("flag", 99, 50)
    assert settings.kafka == {"session.timeout.ms": "7000", "linger.ms": "20"}
    # Each passthrough key goes only to the client it belongs to.
    assert consumer_config(settings)["session.timeout.ms"] == "7000"
    assert "linger.ms" not in consumer_config(settings)
    assert producer_config(settings)["linger.ms"] == "20"
    assert "session.timeout.ms" not in producer_config(settings)


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
