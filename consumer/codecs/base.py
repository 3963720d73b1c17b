"""What every codec shares: the parsed schema, the decoder and encoder contracts, reading one
datum into a record or its `DecodeError`, and the messages those errors carry."""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.types import Schema
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from ..contracts import load_schema, schema_path
from ..errors import DecodeError, EncodeError, SchemaError

Codec = Literal["schemaless", "single-object", "confluent"]

# fastavro's EOFError messages name the reader object (`<_io.BytesIO object at 0x7f...>`):
# dead-letter messages should not vary with memory addresses.
_OBJECT_REPR = re.compile(r"\s*(from\s+)?<[^<>]* object at 0x[0-9a-f]+>")


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """A parsed Avro schema with what the codecs need of it."""

    name: str
    """full name (`packflow.demo.DemoInput`), or the type for an unnamed schema"""
    parsed: Schema
    """fastavro's parsed form"""
    text: str
    """the schema's JSON as written (what a Schema Registry is given)"""
    fingerprint: bytes
    """CRC-64-AVRO of its parsing canonical form, in single-object header byte order"""

    @classmethod
    def load(cls, name_or_path: str) -> AvroSchema:
        """A shipped schema by name (`demo_input`) or any `.avsc` file by path."""
        parsed = load_schema(name_or_path)
        return cls.of(parsed, schema_path(name_or_path).read_text())

    @classmethod
    def of(cls, parsed: Schema, text: str) -> AvroSchema:
        if isinstance(parsed, dict):
            name = str(parsed.get("name") or parsed.get("type"))
        else:
            name = str(parsed)
        return cls(name, parsed, text, rabin_fingerprint(parsed))


def rabin_fingerprint(parsed: Schema) -> bytes:
    """The schema's CRC-64-AVRO fingerprint as the single-object header carries it (8 bytes,
    little-endian, as the Java implementation writes it). Its hex is fastavro's
    `fingerprint(..., "CRC-64-AVRO")` and what `DecodeError` messages show."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def load_record_schema(name_or_path: str, role: str) -> AvroSchema:
    schema = AvroSchema.load(name_or_path)
    if not isinstance(schema.parsed, dict) or schema.parsed.get("type") != "record":
        raise SchemaError(f"the {role} schema {name_or_path!r} must be an Avro record")
    return schema


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Writer:
    """A writer schema made ready to be read as the reader schema."""

    parsed: Schema
    reader: Schema | None
    """None when the writer is the reader: fastavro then skips resolution"""
    label: str
    """how error messages name the pair"""


# What decides how bytes are read: the parsing canonical form plus logical types (a decimal's
# scale changes the value, yet is not in the canonical form). Docs, defaults, aliases and
# custom properties do not matter when writer and reader agree on all of these.
_READING_KEYS = frozenset(
    {"type", "name", "fields", "items", "values", "symbols", "size"}
    | {"logicalType", "precision", "scale"}
)


def _reading_form(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _reading_form(v) for k, v in schema.items() if k in _READING_KEYS}
    if isinstance(schema, list):
        return [_reading_form(s) for s in schema]
    return schema


def pair(writer: AvroSchema, reader: AvroSchema, origin: str = "") -> Writer:
    """How to read `writer`'s datums as `reader`; `origin` says where the writer came from."""
    if writer.fingerprint == reader.fingerprint and _reading_form(writer.parsed) == _reading_form(
        reader.parsed
    ):
        # The reader reads the writer's bytes alike: skip fastavro's resolution, which costs
        # more than half of the decode time.
        return Writer(reader.parsed, None, f"schema {reader.name}{origin}")
    return Writer(
        writer.parsed, reader.parsed, f"schema {reader.name} (writer {writer.name}{origin})"
    )


# schemaless_reader's defaults, as its record reader takes them.
_READ_OPTIONS = {
    "return_record_name": False,
    "return_record_name_override": False,
    "handle_unicode_errors": "strict",
    "return_named_type": False,
    "return_named_type_override": False,
}


def record_reader(writer: Writer) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The call that reads one datum of `writer` from a buffer, as (function, arguments after
    the buffer): `fastavro.schemaless_reader`, or, for a record read without resolution,
    the compiled reader's `read_record` that schemaless_reader ends in. Called directly it
    skips schemaless_reader's set-up per datum (named schemas, options, a schema check):
    ~15% of the decode time of a flat record. The same values (tested, on the dependency
    floors too); schemaless_reader where fastavro is not compiled or lacks it."""
    parsed = writer.parsed
    try:
        read_record = getattr(importlib.import_module("fastavro._read"), "read_record", None)
    except ImportError:  # fastavro's pure-Python build
        read_record = None
    if writer.reader is not None or read_record is None or not _is_record(parsed):
        return fastavro.schemaless_reader, (parsed, writer.reader)
    named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
    fastavro.parse_schema(parsed, named["writer"])  # the named types a field may refer to
    return read_record, (parsed, named, None, _READ_OPTIONS)


def _is_record(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "record"


def read(value: bytes, start: int, writer: Writer) -> dict[str, Any] | DecodeError:
    """One datum from `value[start:]`, resolved to the reader schema, or its DecodeError."""
    buffer = BytesIO(value)
    if start:
        buffer.seek(start)
    try:
        record = fastavro.schemaless_reader(buffer, writer.parsed, writer.reader)
    except SchemaResolutionError as exc:
        return DecodeError(
            f"cannot resolve the writer to the reader, {writer.label}: {exc}", reason="incompatible"
        )
    except Exception as exc:  # noqa: BLE001
        # Malformed bytes make fastavro raise many types (EOFError, IndexError, ValueError,
        # UnicodeDecodeError, MemoryError, ...): each is this record's failure, not the batch's.
        return DecodeError(f"corrupt Avro for {writer.label}: {describe(exc)}", reason="corrupt")
    left = len(value) - buffer.tell()
    if left:
        return DecodeError(
            f"corrupt Avro for {writer.label}: {left} bytes left over after the record",
            reason="corrupt",
        )
    if not isinstance(record, dict):
        # A union writer read by a record reader can yield its other branches (null, ...).
        return DecodeError(
            f"not a record for {writer.label}: decoded {type(record).__name__}",
            reason="incompatible",
        )
    return record


def describe(exc: BaseException) -> str:
    """An exception as one line without memory addresses."""
    detail = _OBJECT_REPR.sub("", str(exc)).strip()
    if isinstance(exc, EOFError):
        return f"truncated ({detail})" if detail else "truncated"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def null_value() -> DecodeError:
    return DecodeError(
        "null value (a tombstone or an empty message), not an Avro record", reason="null"
    )


def first_bytes(value: bytes, count: int) -> str:
    return " ".join(f"0x{b:02x}" for b in value[:count]) or "none (empty value)"


# -- the contracts ---------------------------------------------------------------------------


class Decoder(ABC):
    """Turns the values of a batch of input messages into records of the reader schema."""

    codec: Codec

    def __init__(self, reader: AvroSchema) -> None:
        self.reader = reader

    @abstractmethod
    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        """One entry per value, in order: its record, or the `DecodeError` that explains why
        it has none. Raises only `RegistryError`, when the registry cannot be asked at all (a
        transient failure must not turn good records into dead letters)."""

    def decode(self, value: bytes | None) -> dict[str, Any]:
        """One record; raises its `DecodeError`."""
        result = self.decode_batch([value])[0]
        if isinstance(result, DecodeError):
            raise result
        return result


class Encoder(ABC):
    """Turns records into message values of one codec and writer schema."""

    codec: Codec

    def __init__(self, schema: AvroSchema) -> None:
        self.schema = schema

    @abstractmethod
    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The message value of `record`; raises `EncodeError` when it does not fit the
        schema, naming the field."""

    def encode_batch(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        return [self.encode(record) for record in records]

    def mismatch(self, record: Mapping[str, Any], exc: Exception) -> EncodeError:
        """The `EncodeError` for `record`, which the writer refused with `exc`."""
        # fastavro's writer errors rarely name the field; its validator does, so ask it why.
        try:
            validate(record, self.schema.parsed, raise_errors=True)
        except AvroValidationError as invalid:
            detail = "; ".join(str(error) for error in invalid.errors)
        except Exception:  # noqa: BLE001 - the validator failing too: keep the writer's error
            detail = describe(exc)
        else:
            detail = describe(exc)
        return EncodeError(f"record does not match schema {self.schema.name}: {detail}")


class HeaderEncoder(Encoder):
    """A fixed header, then the schemaless datum. Not thread-safe: it reuses one buffer."""

    def __init__(self, schema: AvroSchema, header: bytes) -> None:
        super().__init__(schema)
        self.header = header
        self._buffer = BytesIO()

    def encode(self, record: Mapping[str, Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(self.header)
        try:
            fastavro.schemaless_writer(buffer, self.schema.parsed, record)
        except Exception as exc:
            raise self.mismatch(record, exc) from exc
        return buffer.getvalue()
