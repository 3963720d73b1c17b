"""Synthetic records for any Avro record schema (`packflow produce --generate N`, the demo,
benchmarks and tests).

Deterministic for a seed: numeric fields are normally distributed (what a model expects of
standardised features), the id field is `<prefix><n>`, timestamps are the current time in
the field's unit. Fields of other types get fastavro's random values.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import fastavro.utils
import numpy as np


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
            elif kind == "string":
                columns[name] = [f"{name}-{base + i}" for i in range(n)]
            else:
                columns[name] = [
                    next(fastavro.utils.generate_many(field["type"], 1)) for _ in range(n)
                ]
        names = list(columns)
        for row in zip(*columns.values(), strict=True):
            yield dict(zip(names, row, strict=True))
