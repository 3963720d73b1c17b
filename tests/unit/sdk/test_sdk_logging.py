"""structlog set-up: PACKFLOW_LOG_LEVEL, formats, and leaving others' configuration alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog

from packflow import ConfigError, InferenceBackend
from packflow.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class Chatty(InferenceBackend):
    def initialize(self) -> None:
        self.logger.debug("debug_event", n=1)
        self.logger.warning("warning_event", n=2)

    def execute(self, inputs: Any) -> Any:
        return inputs


def emitted(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_level_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACKFLOW_LOG_LEVEL", "warning")
    monkeypatch.setenv("PACKFLOW_LOG_FORMAT", "json")
    configure_logging(force=True)
    capsys.readouterr()
    Chatty()
    events = [orjson.loads(line) for line in emitted(capsys)]
    assert [(e["event"], e["level"], e["backend"], e["n"]) for e in events] == [
        ("warning_event", "warning", "Chatty", 2)
    ]


def test_debug_level_shows_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", fmt="json", force=True)
    capsys.readouterr()
    Chatty()
    assert [orjson.loads(line)["event"] for line in emitted(capsys)] == [
        "debug_event",
        "warning_event",
        "backend_initialized",
    ]


def test_unknown_level_or_format_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACKFLOW_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as info:
        configure_logging(force=True)
    assert info.value.fields == ("PACKFLOW_LOG_LEVEL",)
    assert "unknown level 'LOUD'" in str(info.value)
    with pytest.raises(ConfigError, match="PACKFLOW_LOG_FORMAT: unknown format 'xml'"):
        configure_logging("INFO", fmt="xml", force=True)


def test_an_existing_configuration_is_kept() -> None:
    structlog.configure(processors=[structlog.testing.LogCapture()])
    before = structlog.get_config()
    configure_logging("DEBUG")
    get_logger(backend="x")
    assert structlog.get_config() == before


# Built at run time, so that no source line (which a traceback shows) holds it.
PLANTED = "planted-" + "".join(reversed("terces"))


def _fail_with_a_secret_local() -> None:
    settings = {"sasl.password": PLANTED}  # a frame local, as the replica's settings are
    raise RuntimeError(f"registry http://apikey:{settings['sasl.password']}@registry:8081 down")


def _log_failure() -> None:
    try:
        _fail_with_a_secret_local()
    except RuntimeError:
        get_logger().error("worker_failed", exc_info=True, kafka={"sasl.password": PLANTED})


def test_json_lines_carry_the_exception_without_locals_or_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(fmt="json", force=True)
    capsys.readouterr()
    _log_failure()
    lines = emitted(capsys)
    assert len(lines) == 1
    assert PLANTED not in lines[0]
    event = orjson.loads(lines[0])
    assert event["event"] == "worker_failed"
    assert event["kafka"] == {"sasl.password": "***"}
    assert "exc_info" not in event
    [exc] = event["exception"]
    assert exc["exc_type"] == "RuntimeError"
    assert exc["exc_value"] == "registry http://***@registry:8081 down"
    assert [f["name"] for f in exc["frames"]] == ["_log_failure", "_fail_with_a_secret_local"]
    assert all("locals" not in f for f in exc["frames"])


def test_console_traceback_shows_no_locals_or_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(fmt="console", force=True)
    capsys.readouterr()
    _log_failure()
    err = capsys.readouterr().err
    assert PLANTED not in err
    assert "worker_failed" in err
    assert "kafka={'sasl.password': '***'}" in err
    assert "_fail_with_a_secret_local" in err  # a frame
    assert "RuntimeError: registry http://***@registry:8081 down" in err
    assert "locals" not in err  # rich titles a frame's locals box "locals"
