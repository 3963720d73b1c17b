"""Deterministic idempotency keys: the configured id field's value, else topic/partition/offset.

The same input always gets the same key, whichever replica reads it and in whatever order, so
the compacted results topic holds one result per key. A record without the id field (or one
that could not be decoded) falls back to its coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def coordinate_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


def record_keys(
    records: Sequence[Mapping[str, Any] | None],
    coordinates: Sequence[tuple[str, int, int]],
    id_field: str | None,
) -> list[str]:
    """One key per record; `records[i]` is None where decoding failed. `coordinates[i]` is
    looked at only for records that need it (it may be computed lazily)."""
    if id_field is None:
        return [coordinate_key(*coordinates[i]) for i in range(len(records))]
    try:  # the common batch: every record has a string id (one pass, no per-record branch)
        ids = [record[id_field] for record in records]  # type: ignore[index]
        if set(map(type, ids)) == {str}:
            return ids
    except (KeyError, TypeError):  # a record without it, or one not decoded (None)
        pass
    keys = []
    for i, record in enumerate(records):
        value = record.get(id_field) if record is not None else None
        if value is None:
            keys.append(coordinate_key(*coordinates[i]))
        else:
            keys.append(value if isinstance(value, str) else str(value))
    return keys
