"""Kafka headers Packflow writes on results and dead letters, and reads back.

Results carry the input's W3C trace context (`traceparent`, `tracestate`), and with
`result_headers` on, `packflow.backend`, `packflow.backend.version` and the source
coordinates `packflow.source.topic`, `packflow.source.partition`, `packflow.source.offset`
(off by default: the value already names the backend, and headers cost librdkafka about a
microsecond per result).

Dead letters carry the original key and bytes; their headers are the record's own ones (a
`traceparent`, say), except earlier `packflow.*` ones so that a replayed record that fails
again is not ambiguous, then `packflow.stage` (decode, preprocess, backend, validate,
encode, publish; crash or timeout for a record quarantined after killing its replica, with
`packflow.crash.attempts` and `packflow.crash.exits`), `packflow.error.type`,
`packflow.error.message`, `packflow.attempts` (the calls made for the record, retries
included), the source coordinates and the backend name and version. A dead letter whose copy
of the input was too large to publish carries its first `TRUNCATED_BYTES` instead, with
`packflow.truncated=true`, `packflow.original.size` and `packflow.original.sha256` (of the
whole input value). All values are UTF-8.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Literal

Stage = Literal[
    "decode", "preprocess", "backend", "validate", "encode", "publish", "crash", "timeout"
]
Headers = list[tuple[str, bytes]]
HeaderValue = str | bytes | None
# As confluent-kafka hands them over: (name, value) pairs (or a mapping), or None.
InHeaders = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None

PREFIX = "packflow."
TRACE_HEADERS = ("traceparent", "tracestate")
_MAX_MESSAGE = 2000
TRUNCATED_BYTES = 64 * 1024  # of an input too large to dead-letter whole
_PARTITION = PREFIX + "source.partition"
_OFFSET = PREFIX + "source.offset"


def _bytes(value: HeaderValue) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


def _pairs(headers: InHeaders) -> Sequence[tuple[str, HeaderValue]]:
    if headers is None:
        return ()
    return list(headers.items()) if isinstance(headers, Mapping) else headers


def _ours(fields: dict[str, str]) -> Headers:
    return [(PREFIX + k, v.encode()) for k, v in fields.items()]


def trace_headers(original: InHeaders) -> Headers | None:
    """The input's trace context, for its result (None when it has none)."""
    if not original:
        return None
    kept = [(k, _bytes(v)) for k, v in _pairs(original) if k in TRACE_HEADERS]
    return kept or None


class ResultHeaders:
    """Builds the headers of results; what is the same for every result of a backend or of a
    source topic is encoded once (this runs for every record)."""

    def __init__(self, backend: str, backend_version: str) -> None:
        self._fixed = _ours({"backend": backend, "backend.version": backend_version})
        self._topics: dict[str, tuple[str, bytes]] = {}

    def __call__(self, original: InHeaders, topic: str, partition: int, offset: int) -> Headers:
        source = self._topics.get(topic)
        if source is None:
            source = self._topics[topic] = (PREFIX + "source.topic", topic.encode())
        headers = self._fixed.copy()
        if original:
            headers[:0] = trace_headers(original) or []
        headers.append(source)
        headers.append((_PARTITION, str(partition).encode()))
        headers.append((_OFFSET, str(offset).encode()))
        return headers


def dead_letter_headers(
    original: InHeaders,
    *,
    stage: Stage,
    error_type: str,
    message: str,
    topic: str,
    partition: int,
    offset: int,
    backend: str,
    backend_version: str,
    attempts: int = 1,
    details: Sequence[tuple[str, str]] = (),
) -> Headers:
    kept: Headers = [(k, _bytes(v)) for k, v in _pairs(original) if not k.startswith(PREFIX)]
    return kept + _ours(
        {
            "stage": stage,
            "error.type": error_type,
            "error.message": message[:_MAX_MESSAGE],
            "source.topic": topic,
            "source.partition": str(partition),
            "source.offset": str(offset),
            "backend": backend,
            "backend.version": backend_version,
            "attempts": str(attempts),
        }
        | dict(details)
    )


def truncated_headers(headers: Headers, value: bytes) -> Headers:
    """A dead letter's headers once its copy of `value` is cut to `TRUNCATED_BYTES`."""
    return headers + _ours(
        {
            "truncated": "true",
            "original.size": str(len(value)),
            "original.sha256": hashlib.sha256(value).hexdigest(),
        }
    )


def read_packflow_headers(headers: InHeaders) -> dict[str, str]:
    """The `packflow.*` headers, prefix stripped (for readers and tests)."""
    return {
        k[len(PREFIX) :]: _bytes(v).decode() for k, v in _pairs(headers) if k.startswith(PREFIX)
    }
