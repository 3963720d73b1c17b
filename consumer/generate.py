"""Synthetic records for any Avro record schema (`packflow produce --generate N`, the demo,
benchmarks and tests).

Deterministic for a seed: numeric fields are normally distributed (what a model expects of
standardised features), the id field is `<prefix><n>`, timestamps are the current time in
the field's unit, a string field marked `"generate": "sentence"` gets sentences of 4 to 40
words (text records for the text-embedding backend). Fields of other types get fastavro's
random values.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import fastavro.utils
import numpy as np

_WORDS = [
    "the",
    "a",
    "stream",
    "record",
    "model",
    "batch",
    "replica",
    "partition",
    "broker",
    "result",
    "key",
    "offset",
    "topic",
    "consumer",
    "producer",
    "inference",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "data",
    "science",
    "kafka",
    "torch",
    "vector",
    "text",
    "embedding",
    "order",
    "duplicate",
    "letter",
    "dead",
    "latency",
    "throughput",
    "metric",
    "scale",
    "group",
    "commit",
    "transaction",
    "device",
    "host",
    "memory",
    "copy",
    "kernel",
    "token",
    "sentence",
]


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    lengths = rng.integers(4, 41, n)
    picks = rng.integers(0, len(_WORDS), int(lengths.sum()))
    out, at = [], 0
    for length in lengths.tolist():
        out.append(" ".join(_WORDS[i] for i in picks[at : at + length]).capitalize() + ".")
        at += length
    return out


def _kind(field_type: Any) -> str:
    if isinstance(field_type, dict):
        logical = field_type.get("logicalType")
        return str(logical or field_type.get("type"))
    return str(field_type)


def synthetic_records(
    schema: dict[str, Any],
    count: int,
    *,
    seed: int = 0,
    start: int = 0,
    id_field: str | None = "id",
    id_prefix: str = "rec-",
) -> Iterator[dict[str, Any]]:
    """`count` records of `schema` (a parsed record schema), numbered from `start`."""
    rng = np.random.default_rng(seed)
    random.seed(seed)  # fastavro's generator draws from `random`
    fields = schema["fields"]
    now_ms = int(time.time() * 1000)
    chunk = 10_000
    for base in range(start, start + count, chunk):
        n = min(chunk, start + count - base)
        columns: dict[str, list[Any]] = {}
        for field in fields:
            name, kind = field["name"], _kind(field["type"])
            if name == id_field:
                columns[name] = [f"{id_prefix}{base + i}" for i in range(n)]
            elif kind in ("float", "double"):
                columns[name] = rng.standard_normal(n).tolist()
            elif kind in ("int", "long"):
                columns[name] = rng.integers(0, 1_000_000, n).tolist()
            elif kind == "timestamp-millis":
                columns[name] = [now_ms] * n
            elif kind == "timestamp-micros":
                columns[name] = [now_ms * 1000] * n
            elif kind == "boolean":
                columns[name] = rng.integers(0, 2, n).astype(bool).tolist()
            elif kind == "string" and field.get("generate") == "sentence":
                columns[name] = _sentences(rng, n)
            elif kind == "string":
                columns[name] = [f"{name}-{base + i}" for i in range(n)]
            else:
                columns[name] = [
                    next(fastavro.utils.generate_many(field["type"], 1)) for _ in range(n)
                ]
        names = list(columns)
        for row in zip(*columns.values(), strict=True):
            yield dict(zip(names, row, strict=True))
