"""Avro codecs: input messages' bytes -> records, records -> bytes (producers), and results ->
bytes on the results topic.

Three wire formats for the input, all read with fastavro and resolved from the writer schema
to the reader schema per the Avro spec (field defaults, type promotions, aliases):

- `schemaless`: the bare Avro datum. The writer schema is the reader schema unless another
  one is named (`writer_schema`).
- `single-object`: Avro's single-object encoding, `0xC3 0x01`, the writer schema's 8-byte
  CRC-64-AVRO (Rabin) fingerprint, then the datum. The writer is found by its fingerprint
  among the reader schema and the `known_schemas`.
- `confluent`: the Confluent wire format, byte 0, the 4-byte big-endian schema id, then the
  datum. The writer schema is fetched by id from a Schema Registry (confluent-kafka's client)
  once and cached.

Decoding is per batch and never raises for a bad record: a `DecodeError` takes its place.
Results are JSON (sorted keys, so the same result always gives the same bytes) or Avro of
`schemas/result.avsc`.
"""

from __future__ import annotations

import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any, Literal, cast

import fastavro
import orjson
from cachetools import TTLCache
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.types import Schema
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate

from consumer.contracts import load_schema, schema_path
from consumer.errors import DecodeError, EncodeError, RegistryError, SchemaError
from packflow.errors import ConfigError

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema as RegistrySchema
    from confluent_kafka.schema_registry import SchemaReference, SchemaRegistryClient

Codec = Literal["schemaless", "single-object", "confluent"]
ResultFormat = Literal["json", "avro"]

CODECS: tuple[str, ...] = ("schemaless", "single-object", "confluent")
RESULT_FORMATS: tuple[str, ...] = ("json", "avro")

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5

# A schema id the registry does not know is asked about again after this long: it may be
# registered late (a replicated registry catching up), but a stream of bad ids must not send
# one request per record.
_UNKNOWN_ID_TTL_S = 60.0
_UNKNOWN_ID_CACHE_SIZE = 1024

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


def _load_record_schema(name_or_path: str, role: str) -> AvroSchema:
    schema = AvroSchema.load(name_or_path)
    if not isinstance(schema.parsed, dict) or schema.parsed.get("type") != "record":
        raise SchemaError(f"the {role} schema {name_or_path!r} must be an Avro record")
    return schema


# -- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Writer:
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


def _pair(writer: AvroSchema, reader: AvroSchema, origin: str = "") -> _Writer:
    if writer.fingerprint == reader.fingerprint and _reading_form(writer.parsed) == _reading_form(
        reader.parsed
    ):
        # The reader reads the writer's bytes alike: skip fastavro's resolution, which costs
        # more than half of the decode time.
        return _Writer(reader.parsed, None, f"schema {reader.name}{origin}")
    return _Writer(
        writer.parsed, reader.parsed, f"schema {reader.name} (writer {writer.name}{origin})"
    )


def _read(value: bytes, start: int, writer: _Writer) -> dict[str, Any] | DecodeError:
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
        return DecodeError(f"corrupt Avro for {writer.label}: {_describe(exc)}", reason="corrupt")
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


def _describe(exc: BaseException) -> str:
    detail = _OBJECT_REPR.sub("", str(exc)).strip()
    if isinstance(exc, EOFError):
        return f"truncated ({detail})" if detail else "truncated"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _null() -> DecodeError:
    return DecodeError(
        "null value (a tombstone or an empty message), not an Avro record", reason="null"
    )


def _first_bytes(value: bytes, count: int) -> str:
    return " ".join(f"0x{b:02x}" for b in value[:count]) or "none (empty value)"


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


class SchemalessDecoder(Decoder):
    """Bare Avro datums written with one known writer schema."""

    codec: Codec = "schemaless"

    def __init__(self, reader: AvroSchema, writer: AvroSchema | None = None) -> None:
        super().__init__(reader)
        self.writer = writer or reader
        self._pair = _pair(self.writer, reader)

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        pair = self._pair
        return [_null() if value is None else _read(value, 0, pair) for value in values]


class SingleObjectDecoder(Decoder):
    """Avro single-object encoding; writers found by fingerprint among known schemas."""

    codec: Codec = "single-object"

    def __init__(self, reader: AvroSchema, known: Sequence[AvroSchema] = ()) -> None:
        super().__init__(reader)
        self._writers = {
            schema.fingerprint: _pair(schema, reader, f", fingerprint 0x{schema.fingerprint.hex()}")
            for schema in (*known, reader)
        }
        self._known = ", ".join(
            f"{schema.name} (0x{schema.fingerprint.hex()})" for schema in (reader, *known)
        )

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        writers = self._writers
        decoded: list[dict[str, Any] | DecodeError] = []
        append = decoded.append
        for value in values:
            if value is None:
                append(_null())
            elif value[:2] != SINGLE_OBJECT_MAGIC:
                append(
                    DecodeError(
                        "not Avro single-object encoding: first bytes "
                        f"{_first_bytes(value, 2)} (expected 0xc3 0x01)",
                        reason="framing",
                    )
                )
            elif len(value) < SINGLE_OBJECT_HEADER_SIZE:
                append(
                    DecodeError(
                        f"not Avro single-object encoding: {len(value)} bytes, shorter than "
                        f"its {SINGLE_OBJECT_HEADER_SIZE}-byte header",
                        reason="framing",
                    )
                )
            else:
                writer = writers.get(value[2:SINGLE_OBJECT_HEADER_SIZE])
                if writer is None:
                    append(
                        DecodeError(
                            f"unknown schema fingerprint 0x{value[2:10].hex()}: known are "
                            f"{self._known}",
                            reason="unknown-schema",
                        )
                    )
                else:
                    append(_read(value, SINGLE_OBJECT_HEADER_SIZE, writer))
        return decoded


class ConfluentDecoder(Decoder):
    """The Confluent wire format; writer schemas fetched by id from a Schema Registry.

    Constructing it does not touch the network: a schema id is looked up the first time a
    record carries it, then kept for the decoder's life (ids are immutable in a registry).
    """

    codec: Codec = "confluent"

    def __init__(self, reader: AvroSchema, client: SchemaRegistryClient, where: str) -> None:
        super().__init__(reader)
        self.client = client
        self.where = where
        self._writers: dict[int, _Writer] = {}
        self._rejected: TTLCache[int, tuple[str, str]] = TTLCache(
            maxsize=_UNKNOWN_ID_CACHE_SIZE, ttl=_UNKNOWN_ID_TTL_S
        )

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        writers = self._writers
        decoded: list[dict[str, Any] | DecodeError] = []
        append = decoded.append
        for value in values:
            if value is None:
                append(_null())
            elif len(value) < CONFLUENT_HEADER_SIZE or value[0] != CONFLUENT_MAGIC:
                append(self._framing(value))
            else:
                schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_SIZE], "big")
                writer = writers.get(schema_id) or self._fetch(schema_id)
                if isinstance(writer, DecodeError):
                    append(writer)
                else:
                    append(_read(value, CONFLUENT_HEADER_SIZE, writer))
        return decoded

    def _framing(self, value: bytes) -> DecodeError:
        if value and value[0] != CONFLUENT_MAGIC:
            detail = f"magic byte 0x{value[0]:02x} (expected 0x00)"
        else:
            detail = f"{len(value)} bytes, shorter than its {CONFLUENT_HEADER_SIZE}-byte header"
        return DecodeError(f"not Confluent wire format: {detail}", reason="framing")

    def _fetch(self, schema_id: int) -> _Writer | DecodeError:
        rejected = self._rejected.get(schema_id)
        if rejected is not None:
            return DecodeError(rejected[0], reason=rejected[1])
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.client.get_schema(schema_id)
            if registered.schema_type not in (None, "AVRO"):
                return self._reject(
                    schema_id,
                    f"schema id {schema_id} is a {registered.schema_type} schema, not Avro",
                    "incompatible",
                )
            parsed = self._parse(registered, {})
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return self._reject(
                    schema_id,
                    f"unknown schema id {schema_id}: not in the schema registry at {self.where}",
                    "unknown-schema",
                )
            raise RegistryError(
                f"schema registry at {self.where} refused schema id {schema_id}: {exc}"
            ) from exc
        except (ValueError, fastavro.schema.SchemaParseException) as exc:
            return self._reject(
                schema_id,
                f"schema id {schema_id} in the registry is not a valid Avro schema: {exc}",
                "incompatible",
            )
        except Exception as exc:
            # Connection refused, timeouts, TLS: the registry is down, not the record bad.
            raise RegistryError(
                f"schema registry at {self.where} unreachable fetching schema id {schema_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        writer = _pair(
            AvroSchema.of(parsed, registered.schema_str or ""),
            self.reader,
            f", registry id {schema_id}",
        )
        self._writers[schema_id] = writer
        return writer

    def _parse(self, registered: RegistrySchema, named: dict[str, Any]) -> Schema:
        """Parse a registered schema, first the schemas it references (into `named`)."""
        for reference in registered.references or []:
            self._parse(self._referenced(reference), named)
        return fastavro.parse_schema(json.loads(registered.schema_str or ""), named_schemas=named)

    def _referenced(self, reference: SchemaReference) -> RegistrySchema:
        version = self.client.get_version(
            str(reference.subject), reference.version if reference.version else "latest"
        )
        return version.schema

    def _reject(self, schema_id: int, message: str, reason: str) -> DecodeError:
        self._rejected[schema_id] = (message, reason)
        return DecodeError(message, reason=reason)


@functools.cache
def registry_client(url: str) -> SchemaRegistryClient:
    """confluent-kafka's Schema Registry client for `url`, one per URL per process (so that
    producers and decoders share its schema cache). `mock://<name>` gives the client's
    in-memory mock registry, shared in the same way."""
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:
        raise ConfigError(
            [("codec", f"'confluent' needs confluent-kafka[schemaregistry] installed ({exc})")],
            subject="Avro codec",
        ) from exc
    return SchemaRegistryClient.new_client({"url": url})


def _client(
    registry_url: str | None, registry_client_: SchemaRegistryClient | None
) -> tuple[SchemaRegistryClient, str]:
    if registry_client_ is not None:
        return registry_client_, registry_url or "(given client)"
    if not registry_url:
        raise ConfigError(
            [("registry_url", "codec 'confluent' needs a Schema Registry URL")],
            subject="Avro codec",
        )
    return registry_client(registry_url), registry_url


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ConfigError(
            [("codec", f"unknown codec {codec!r}: choose one of {', '.join(CODECS)}")],
            subject="Avro codec",
        )


def make_decoder(
    codec: Codec,
    schema: str,
    *,
    writer_schema: str | None = None,
    known_schemas: Sequence[str] = (),
    registry_url: str | None = None,
    registry_client: SchemaRegistryClient | None = None,
) -> Decoder:
    """The decoder for `codec` with `schema` (shipped name or `.avsc` path) as reader schema.

    `writer_schema` applies to `schemaless` only (default: the reader schema); `known_schemas`
    to `single-object` only (the writers it can find by fingerprint, besides the reader);
    `registry_url` or `registry_client` to `confluent` only. Raises `ConfigError` for a
    misplaced or missing argument, `SchemaError` for a schema that cannot be loaded.
    """
    _check_codec(codec)
    problems = []
    if writer_schema is not None and codec != "schemaless":
        problems.append(("writer_schema", f"applies to codec 'schemaless' only, not {codec!r}"))
    if known_schemas and codec != "single-object":
        problems.append(("known_schemas", f"applies to codec 'single-object' only, not {codec!r}"))
    if problems:
        raise ConfigError(problems, subject="Avro codec")
    reader = _load_record_schema(schema, "reader")
    if codec == "schemaless":
        writer = AvroSchema.load(writer_schema) if writer_schema is not None else None
        return SchemalessDecoder(reader, writer)
    if codec == "single-object":
        return SingleObjectDecoder(reader, [AvroSchema.load(name) for name in known_schemas])
    client, where = _client(registry_url, registry_client)
    return ConfluentDecoder(reader, client, where)


# -- encoding (producers) --------------------------------------------------------------------


class Encoder(ABC):
    """Turns records into message values of one codec and writer schema. Not thread-safe: it
    reuses one buffer."""

    codec: Codec

    def __init__(self, schema: AvroSchema) -> None:
        self.schema = schema
        self._buffer = BytesIO()

    @abstractmethod
    def header(self) -> bytes:
        """The bytes before each datum."""

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The message value of `record`; raises `EncodeError` when it does not fit the
        schema, naming the field."""
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(self.header())
        try:
            fastavro.schemaless_writer(buffer, self.schema.parsed, record)
        except Exception as exc:
            raise EncodeError(self._mismatch(record, exc)) from exc
        return buffer.getvalue()

    def encode_batch(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        return [self.encode(record) for record in records]

    def _mismatch(self, record: Mapping[str, Any], exc: Exception) -> str:
        # fastavro's writer errors rarely name the field; its validator does, so ask it why.
        try:
            validate(record, self.schema.parsed, raise_errors=True)
        except AvroValidationError as invalid:
            detail = "; ".join(str(error) for error in invalid.errors)
        except Exception:  # noqa: BLE001 - the validator failing too: keep the writer's error
            detail = _describe(exc)
        else:
            detail = _describe(exc)
        return f"record does not match schema {self.schema.name}: {detail}"


class SchemalessEncoder(Encoder):
    codec: Codec = "schemaless"

    def header(self) -> bytes:
        return b""


class SingleObjectEncoder(Encoder):
    codec: Codec = "single-object"

    def __init__(self, schema: AvroSchema) -> None:
        super().__init__(schema)
        self._header = SINGLE_OBJECT_MAGIC + schema.fingerprint

    def header(self) -> bytes:
        return self._header


class ConfluentEncoder(Encoder):
    """Registers its schema under `subject` on first use (registering is idempotent: an
    already registered schema gets its existing id)."""

    codec: Codec = "confluent"

    def __init__(
        self, schema: AvroSchema, client: SchemaRegistryClient, where: str, subject: str
    ) -> None:
        super().__init__(schema)
        self.client = client
        self.where = where
        self.subject = subject
        self._header: bytes | None = None

    @property
    def schema_id(self) -> int:
        """The schema's id in the registry (registering it if needed)."""
        return int.from_bytes(self.header()[1:], "big")

    def header(self) -> bytes:
        if self._header is None:
            from confluent_kafka.schema_registry import Schema as RegistrySchema

            try:
                schema_id = self.client.register_schema(
                    self.subject, RegistrySchema(self.schema.text, "AVRO")
                )
            except Exception as exc:
                raise RegistryError(
                    f"schema registry at {self.where} did not register {self.schema.name} "
                    f"under subject {self.subject!r}: {exc}"
                ) from exc
            self._header = bytes([CONFLUENT_MAGIC]) + int(schema_id).to_bytes(4, "big")
        return self._header


def make_encoder(
    codec: Codec,
    schema: str,
    *,
    registry_url: str | None = None,
    registry_client: SchemaRegistryClient | None = None,
    subject: str | None = None,
) -> Encoder:
    """The encoder for `codec` writing with `schema` (shipped name or `.avsc` path).

    For `confluent`, the schema is registered under `subject` (pass `<topic>-value` for the
    usual topic name strategy; default: the record's full name, as the record name strategy).
    """
    _check_codec(codec)
    writer = AvroSchema.load(schema)
    if codec == "schemaless":
        return SchemalessEncoder(writer)
    if codec == "single-object":
        return SingleObjectEncoder(writer)
    client, where = _client(registry_url, registry_client)
    return ConfluentEncoder(writer, client, where, subject or writer.name)


# -- results ---------------------------------------------------------------------------------


@functools.cache
def result_schema() -> AvroSchema:
    """`schemas/result.avsc`, loaded once."""
    return _load_record_schema("result", "result")


def _output_json(key: str, output: Any) -> bytes:
    try:
        return orjson.dumps(output, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise EncodeError(
            f"output for key {key!r} is not JSON-serialisable: {exc}", key=key
        ) from exc


class ResultEncoder(ABC):
    """Turns backend outputs into result message values; the same inputs always give the
    same bytes."""

    fmt: ResultFormat

    @abstractmethod
    def encode_batch(
        self, keys: Sequence[str], outputs: Sequence[Any], backend: str, backend_version: str
    ) -> list[bytes]:
        """One value per (key, output) pair; raises `EncodeError` naming the first key whose
        output cannot be encoded."""


class JsonResultEncoder(ResultEncoder):
    """`{"backend", "backend_version", "key", "output"}` as JSON with sorted keys (at every
    depth), so equal results are byte-identical."""

    fmt: ResultFormat = "json"

    def encode_batch(
        self, keys: Sequence[str], outputs: Sequence[Any], backend: str, backend_version: str
    ) -> list[bytes]:
        _same_length(keys, outputs)
        dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS
        values = []
        for key, output in zip(keys, outputs, strict=True):
            result = {
                "key": key,
                "backend": backend,
                "backend_version": backend_version,
                "output": output,
            }
            try:
                values.append(dumps(result, option=option))
            except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
                raise EncodeError(
                    f"output for key {key!r} is not JSON-serialisable: {exc}", key=key
                ) from exc
        return values


class AvroResultEncoder(ResultEncoder):
    """Schemaless Avro of `schemas/result.avsc`; `output` is the output's sorted-keys JSON."""

    fmt: ResultFormat = "avro"

    def __init__(self) -> None:
        self.schema = result_schema()
        self._buffer = BytesIO()

    def encode_batch(
        self, keys: Sequence[str], outputs: Sequence[Any], backend: str, backend_version: str
    ) -> list[bytes]:
        _same_length(keys, outputs)
        parsed, buffer = self.schema.parsed, self._buffer
        values = []
        for key, output in zip(keys, outputs, strict=True):
            result = {
                "key": key,
                "backend": backend,
                "backend_version": backend_version,
                "output": _output_json(key, output).decode(),
            }
            buffer.seek(0)
            buffer.truncate()
            try:
                fastavro.schemaless_writer(buffer, parsed, result)
            except Exception as exc:
                raise EncodeError(
                    f"result for key {key!r} does not fit {self.schema.name}: {_describe(exc)}",
                    key=key if isinstance(key, str) else None,
                ) from exc
            values.append(buffer.getvalue())
        return values


def _same_length(keys: Sequence[str], outputs: Sequence[Any]) -> None:
    if len(keys) != len(outputs):
        raise ValueError(f"{len(keys)} keys for {len(outputs)} outputs")


def make_result_encoder(fmt: ResultFormat) -> ResultEncoder:
    """The results' encoder: `json` (default of the runtime) or `avro`."""
    if fmt == "json":
        return JsonResultEncoder()
    if fmt == "avro":
        return AvroResultEncoder()
    raise ConfigError(
        [("result_format", f"unknown result format {fmt!r}: choose json or avro")],
        subject="result encoder",
    )


def decode_result(value: bytes | None, fmt: ResultFormat) -> dict[str, Any]:
    """A result message value back to `{"key", "backend", "backend_version", "output"}`, with
    `output` as the backend returned it (JSON types), whichever the format. Raises
    `DecodeError`."""
    if value is None:
        raise _null()
    if fmt == "json":
        try:
            result = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"corrupt JSON result: {exc}", reason="corrupt") from exc
        if not isinstance(result, dict) or "output" not in result:
            raise DecodeError(
                f"not a result: {type(result).__name__} without an output", reason="corrupt"
            )
        return cast(dict[str, Any], result)
    if fmt == "avro":
        schema = result_schema()
        record = _read(value, 0, _Writer(schema.parsed, None, f"schema {schema.name}"))
        if isinstance(record, DecodeError):
            raise record
        try:
            record["output"] = orjson.loads(record["output"])
        except orjson.JSONDecodeError as exc:
            raise DecodeError(
                f"corrupt JSON output in Avro result: {exc}", reason="corrupt"
            ) from exc
        return record
    raise ConfigError(
        [("result_format", f"unknown result format {fmt!r}: choose json or avro")],
        subject="result decoder",
    )
