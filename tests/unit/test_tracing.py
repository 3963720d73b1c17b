"""Which span exporters OTEL_TRACES_EXPORTER names, as OpenTelemetry's own configuration
finds them; a name nothing installed provides is one clear error, not a crash or silence."""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points

import pytest

from packflow.runtime.tracing import TracingError, check_tracing, span_exporters


def _otel_sdk_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    except ModuleNotFoundError:  # not even the API
        return False


pytestmark = pytest.mark.skipif(not _otel_sdk_installed(), reason="the otel extra is not installed")
OTLP_INSTALLED = any(
    e.name.startswith("otlp") for e in entry_points(group="opentelemetry_traces_exporter")
)


def test_console_and_none_are_the_sdks_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert span_exporters() == [ConsoleSpanExporter]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert span_exporters() == []


def test_no_variable_no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    check_tracing()


@pytest.mark.skipif(OTLP_INSTALLED, reason="an OTLP exporter is installed")
def test_otlp_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(TracingError) as caught:
        check_tracing()
    message = str(caught.value)
    assert message.startswith("OTEL_TRACES_EXPORTER=otlp: no installed package provides")
    assert "pip install opentelemetry-exporter-otlp" in message


def test_an_unknown_exporter_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,zipkinn")
    with pytest.raises(TracingError, match="trace exporter 'zipkinn' .installed: console"):
        check_tracing()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with pytest.raises(TracingError, match="Unsupported OTLP protocol 'carrier-pigeon'"):
        check_tracing()
