"""The Avro contracts in `schemas/`, found the same way in a checkout and in an installed wheel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro

from .errors import SchemaError

_HERE = Path(__file__).parent


def schemas_dir() -> Path:
    """Where the `.avsc` files are: inside the package when installed from a wheel (which
    carries them as `packflow/runtime/_schemas`), else the repository's top-level `schemas/`."""
    packaged = _HERE / "_schemas"
    return packaged if packaged.is_dir() else _HERE.parent / "schemas"


def available_schemas() -> list[str]:
    return sorted(p.stem for p in schemas_dir().glob("*.avsc"))


def schema_path(name: str) -> Path:
    """The file of a shipped schema by name (`demo_input`), or a path to any `.avsc` file."""
    candidate = Path(name)
    if candidate.suffix == ".avsc" and candidate.is_file():
        return candidate
    path = schemas_dir() / f"{name}.avsc"
    if not path.is_file():
        known = ", ".join(available_schemas())
        raise SchemaError(f"no schema {name!r}: not a .avsc file, nor one of {known}")
    return path


def load_schema(name: str) -> dict[str, Any]:
    """A parsed (fastavro) schema, by shipped name or file path."""
    path = schema_path(name)
    try:
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"{path} is not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SchemaError(f"{path} must hold a named Avro schema (a JSON object)")
    return parsed
