"""Reading sample records from files: JSON lines, or an Avro object container file.

The format is told by the content, not the name: an Avro container starts with the magic
bytes `Obj\\x01`; anything else is read as JSON lines (one JSON object per line, blank lines
skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import orjson

from packflow.errors import SampleError

_AVRO_MAGIC = b"Obj\x01"


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records in `path`, lazily, in file order."""
    source = Path(path)
    try:
        with source.open("rb") as f:
            avro = f.read(4) == _AVRO_MAGIC
    except OSError as exc:
        raise SampleError(f"cannot read {source}: {exc.strerror or exc}") from None
    return _avro_records(source) if avro else _json_records(source)


def _json_records(source: Path) -> Iterator[dict[str, Any]]:
    with source.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise SampleError(f"{source}:{number}: not valid JSON ({exc})") from None
            if not isinstance(record, dict):
                raise SampleError(
                    f"{source}:{number}: JSON {type(record).__name__}, not an object; "
                    "write one JSON object per line"
                )
            yield record


def _avro_records(source: Path) -> Iterator[dict[str, Any]]:
    with source.open("rb") as f:
        try:
            for number, record in enumerate(fastavro.reader(f)):
                if not isinstance(record, dict):
                    raise SampleError(
                        f"{source}: Avro datum {number} is {type(record).__name__}, not a record"
                    )
                yield record
        except (ValueError, EOFError, fastavro.read.SchemaResolutionError) as exc:
            raise SampleError(f"{source}: unreadable Avro container ({exc})") from None
