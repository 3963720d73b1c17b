"""Secrets never printed (issue 16, item 5): the one redaction rule, and every printer that
uses it: `run --print-settings`, error lines, `dlq show`, `dlq list`, `status --json`, logs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from packflow.redaction import MASK, is_secret, redact, redact_text, url_without_credentials
from packflow.runtime.cli import app, messages
from packflow.runtime.cli import dlq as dlq_cli
from packflow.runtime.cli import status as status_cli
from packflow.runtime.codecs import where_named
from packflow.runtime.dlq import DeadLetter
from packflow.runtime.settings import RuntimeSettings
from packflow.runtime.status import GroupState

runner = CliRunner()
# Built at run time, so that no source line (which a traceback shows) holds it.
PLANTED = "planted-" + "".join(reversed("terces"))


@pytest.fixture(autouse=True)
def no_packflow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PACKFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "sasl.password",
        "SASL_PASSWORD",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.jaas.config",
        "basic.auth.user.info",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "token",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret(name)
    assert redact({name: PLANTED}) == {name: MASK}


@pytest.mark.parametrize(
    "name",
    [
        "sasl.username",
        "sasl.mechanism",
        "security.protocol",
        "ssl.key.location",
        "ssl.ca.location",
        "bootstrap.servers",
        "dedup_max_keys",
        "sasl.oauthbearer.token.endpoint.url",
    ],
)
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret(name)
    assert redact({name: "shown"}) == {name: "shown"}


def test_no_default_setting_is_hidden() -> None:
    dumped = RuntimeSettings().model_dump(mode="json")
    assert redact(dumped) == dumped


def test_url_credentials_are_hidden_as_where_named_hides_them() -> None:
    url = f"https://apikey:{PLANTED}@registry.example:8081/subjects"
    assert url_without_credentials(url) == "https://***@registry.example:8081/subjects"
    assert where_named(url) == url_without_credentials(url)
    assert redact_text(f"GET {url} failed: 401") == (
        "GET https://***@registry.example:8081/subjects failed: 401"
    )
    assert redact({"registry_url": url}) == {
        "registry_url": "https://***@registry.example:8081/subjects"
    }
    assert url_without_credentials("http://host:8081") == "http://host:8081"


def test_print_settings_hides_every_secret_from_flags_and_environment() -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "--print-settings",
            "--kafka",
            f"ssl.key.password={PLANTED}",
            "--kafka",
            "sasl.username=alice",
            "--producer-kafka",
            f"sasl.jaas.config=org.apache.kafka.common.security.scram password={PLANTED}",
            "--registry-url",
            f"http://apikey:{PLANTED}@registry:8081",
        ],
        env={
            "PACKFLOW_KAFKA__SASL_PASSWORD": PLANTED,
            "PACKFLOW_CONSUMER_KAFKA__SSL_KEY_PEM": PLANTED,
        },
    )
    assert result.exit_code == 0, result.output
    assert PLANTED not in result.output
    shown = json.loads(result.stdout)
    assert shown["kafka"] == {
        "ssl.key.password": "***",
        "sasl.username": "alice",
        "sasl.password": "***",
    }
    assert shown["consumer_kafka"] == {"ssl.key.pem": "***"}
    assert shown["producer_kafka"] == {"sasl.jaas.config": "***"}
    assert shown["registry_url"] == "http://***@registry:8081"


def test_error_lines_hide_url_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    messages.error(f"registry http://u:{PLANTED}@h:1 refused", f"detail http://u:{PLANTED}@h")
    messages.warning(f"see https://u:{PLANTED}@h/x")
    err = capsys.readouterr().err
    assert PLANTED not in err
    assert err.splitlines() == [
        "packflow: error: registry http://***@h:1 refused",
        "detail http://***@h",
        "packflow: warning: see https://***@h/x",
    ]


def _letter() -> DeadLetter:
    error = f"RegistryError: http://apikey:{PLANTED}@registry:8081 refused"
    return DeadLetter(
        "packflow.dead-letter",
        0,
        7,
        b"k1",
        b"\x00",
        [
            ("packflow.error.type", b"RegistryError"),
            ("packflow.error.message", error.encode()),
            ("packflow.stage", b"decode"),
        ],
    )


def test_dlq_show_and_list_hide_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dlq_cli, "read_dead_letters", lambda *_, **__: [_letter()])
    shown = runner.invoke(app, ["dlq", "show", "packflow.dead-letter/0/7"])
    assert shown.exit_code == 0, shown.output
    assert PLANTED not in shown.output
    headers = json.loads(shown.stdout)["headers"]
    assert headers["packflow.error.message"] == "RegistryError: http://***@registry:8081 refused"
    listed = runner.invoke(app, ["dlq", "list"])
    assert listed.exit_code == 0, listed.output
    assert PLANTED not in listed.output
    assert "http://***@registry:8081" in listed.output


def test_status_json_goes_through_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    state = GroupState(group="g", topic="t", state="Stable", members=[], partitions=[])
    seen: list[Any] = []

    def spy(value: Any, name: str = "") -> Any:
        seen.append(value)
        return value

    monkeypatch.setattr(status_cli, "group_state", lambda *_, **__: state)
    monkeypatch.setattr(status_cli, "redact", spy)
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == [state.to_json()]
