"""Trace context from an input record to its result or dead letter.

Without OpenTelemetry, a record's W3C `traceparent` and `tracestate` headers pass to its
result and dead letter unchanged. With the `otel` extra installed and `OTEL_TRACES_EXPORTER`
set, each traced record gets
a `packflow process` span, a child of the record's context (W3C propagation), timed from the
start of its micro-batch to its publishing, and its result and dead letter carry that span's
context: a trace then shows the producer, Packflow, and whoever reads the result.

OpenTelemetry's own configuration chooses the exporters: `OTEL_TRACES_EXPORTER` is a comma
list of the names installed packages register (`console` comes with the SDK; `otlp` needs
`opentelemetry-exporter-otlp`; `none` exports nothing but still makes spans), and the
exporters read their own `OTEL_EXPORTER_*` variables. A name no installed package provides is
a `TracingError`, raised before any replica starts.

Only records that arrive with a `traceparent` get a span: tracing is sampled upstream.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from packflow.errors import PackflowError

from .headers import TRACE_HEADERS, Headers

try:
    from opentelemetry import propagate, trace
except ImportError:  # the `otel` extra is not installed
    propagate = trace = None  # type: ignore[assignment]


EXPORTER_ENV = "OTEL_TRACES_EXPORTER"


class TracingError(PackflowError):
    """`OTEL_TRACES_EXPORTER` names an exporter that is not installed, or no exporter."""


class Tracing:
    """`child(headers, ...)`: the trace headers to publish for one traced record. Without a
    tracer (`Tracing.start` found none configured), records' headers pass unchanged."""

    def __init__(self, backend: str, tracer: Any = None) -> None:
        self.backend = backend
        self.tracer = tracer

    @classmethod
    def start(cls, backend: str) -> Tracing:
        """Tracing for a running replica: with a tracer when the `otel` extra is installed
        and `OTEL_TRACES_EXPORTER` is set (the SDK configured here, unless it already is)."""
        if trace is None or not os.environ.get(EXPORTER_ENV):
            return cls(backend)
        _configure_sdk(span_exporters())
        return cls(backend, trace.get_tracer("packflow"))

    @property
    def recording(self) -> bool:
        return self.tracer is not None

    def child(self, kept: Headers, where: tuple[str, int, int], started_ns: int) -> Headers:
        """`kept` (the record's trace headers) replaced by those of a span under them."""
        if self.tracer is None:
            return kept
        parent = propagate.extract({k: v.decode() for k, v in kept})
        topic, partition, offset = where
        span = self.tracer.start_span(
            "packflow process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            start_time=started_ns or None,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "messaging.kafka.offset": offset,
                "packflow.backend": self.backend,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        return [(k, v.encode()) for k, v in carrier.items() if k in TRACE_HEADERS]


def check_tracing() -> None:
    """Raise `TracingError` now if `Tracing.start` would: for the command line to say so
    once, before it starts replicas."""
    if trace is not None and os.environ.get(EXPORTER_ENV):
        span_exporters()


def span_exporters() -> list[type[Any]]:
    """The span exporter classes `OTEL_TRACES_EXPORTER` names, chosen by OpenTelemetry's SDK
    itself (entry points of installed packages; `otlp` by its OTLP protocol variables); empty
    for `none`. Raises `TracingError` for a name that no installed package provides."""
    from opentelemetry.sdk._configuration import _get_exporter_names, _import_exporters

    given = os.environ.get(EXPORTER_ENV, "")
    try:
        names = _get_exporter_names("traces")
        missing = [name for name in names if name not in installed_exporters()]
        if missing:
            raise TracingError(
                f"{EXPORTER_ENV}={given}: no installed package provides the trace exporter "
                f"{', '.join(map(repr, missing))} (installed: "
                f"{', '.join(installed_exporters())}; `otlp` needs "
                "`pip install opentelemetry-exporter-otlp`)"
            )
        exporters, _, _ = _import_exporters(names, [], [])
    except RuntimeError as exc:  # the SDK's word for a protocol or an exporter it rejects
        raise TracingError(f"{EXPORTER_ENV}={given}: {exc}") from None
    return list(exporters.values())


def installed_exporters() -> list[str]:
    """The trace exporter names installed packages register (`console`: the SDK's)."""
    return sorted({e.name for e in entry_points(group="opentelemetry_traces_exporter")})


def _configure_sdk(exporters: list[type[Any]]) -> None:
    """A tracer provider exporting to `exporters`, unless the application configured one
    already."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, names the service; Packflow's name is only the default.
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "packflow"}
    provider = TracerProvider(resource=Resource.create(named))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
