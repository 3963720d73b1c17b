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
