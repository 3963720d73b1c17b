"""Trace context from an input record to its result or dead letter.

Without OpenTelemetry, a record's W3C `traceparent` and `tracestate` headers pass to its
result and dead letter unchanged. With the `otel` extra installed and `OTEL_TRACES_EXPORTER`
set (`otlp`, `console` or `none`, as OpenTelemetry's SDK reads it), each traced record gets
a `packflow process` span, a child of the record's context (W3C propagation), timed from the
start of its micro-batch to its publishing, and its result and dead letter carry that span's
context: a trace then shows the producer, Packflow, and whoever reads the result.

Only records that arrive with a `traceparent` get a span: tracing is sampled upstream.
"""

from __future__ import annotations

import os
from typing import Any

from consumer.headers import TRACE_HEADERS, Headers

try:
    from opentelemetry import propagate, trace
except ImportError:  # the `otel` extra is not installed
    propagate = trace = None  # type: ignore[assignment]


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
        if trace is None or not os.environ.get("OTEL_TRACES_EXPORTER"):
            return cls(backend)
        _configure_sdk()
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


def _configure_sdk() -> None:
    """A tracer provider with the exporter `OTEL_TRACES_EXPORTER` names, unless the
    application configured one already."""
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "packflow"}))
    exporter_name = os.environ["OTEL_TRACES_EXPORTER"].strip().lower()
    if exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
