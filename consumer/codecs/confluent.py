"""`confluent`: the Confluent wire format through confluent-kafka's Schema Registry serdes.

A value is a magic byte, the writer schema's registry reference, then the datum: V0 is 0x00 and
the 4-byte big-endian schema id, V1 is 0x01 and the schema's 16-byte GUID. Framing is
confluent-kafka's (`dual_schema_id_deserializer`, the function its `AvroDeserializer` frames
with); writer schemas, with the schemas they reference, are fetched and parsed by an
`AvroDeserializer` once per id and kept. The datum itself is read by the codecs' own reader,
which skips resolution when the writer and the reader read alike and reports bytes left over;
`AvroDeserializer`'s per-record path resolves every record and costs ~40% more per record.
Records are written by `AvroSerializer` (registration and V0 framing).

confluent-kafka is imported when a confluent codec is made: its registry client costs half a
second of start-up that the other codecs do not need.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cachetools import TTLCache
from fastavro.schema import SchemaParseException

from packflow.errors import ConfigError
from packflow.redaction import url_without_credentials

from ..errors import DecodeError, RegistryError
from .base import AvroSchema, Codec, Decoder, Encoder, Writer, null_value, pair, read

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import Schema as RegistrySchema
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.serde import SchemaId

# SchemaId's type tag; only PROTOBUF changes its framing (message indexes follow the id).
_AVRO = "AVRO"
_HEADER_SIZES = {0: 5, 1: 17}
"""bytes before the datum, by magic byte: V0 (schema id), V1 (schema GUID)"""

# A schema id the registry does not know is asked about again after this long: it may be
# registered late (a replicated registry catching up), but a stream of bad ids must not send
# one request per record.
_UNKNOWN_ID_TTL_S = 60.0
_UNKNOWN_ID_CACHE_SIZE = 1024


def registry_client(url: str, config: Mapping[str, str] | None = None) -> SchemaRegistryClient:
    """confluent-kafka's Schema Registry client for `url` with more client `config`
    (`basic.auth.user.info`, `ssl.ca.location`, ...), one per both per process."""
    return _registry_client(url, tuple(sorted((config or {}).items())))


@functools.cache
def _registry_client(url: str, config: tuple[tuple[str, str], ...]) -> SchemaRegistryClient:
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
    return SchemaRegistryClient.new_client({**dict(config), "url": url})


def where_named(url: str) -> str:
    """A registry URL as messages name it: credentials in it (`https://user:pass@host`)
    are never shown (`packflow.redaction.url_without_credentials`)."""
    return url_without_credentials(url)


def client_for(
    registry_url: str | None,
    client: SchemaRegistryClient | None,
    config: Mapping[str, str] | None = None,
) -> tuple[SchemaRegistryClient, str]:
    """The client to use, and how messages name its registry."""
    if client is not None:
        return client, registry_url or "(given client)"
    if not registry_url:
        raise ConfigError(
            [("registry_url", "codec 'confluent' needs a Schema Registry URL")],
            subject="Avro codec",
        )
    return registry_client(registry_url, config), where_named(registry_url)


def _framing(value: bytes) -> DecodeError:
    size = _HEADER_SIZES.get(value[0]) if value else _HEADER_SIZES[0]
    if size is None:
        detail = f"magic byte 0x{value[0]:02x} (expected 0x00, or 0x01 for a schema GUID)"
    else:
        detail = f"{len(value)} bytes, shorter than its {size}-byte header"
    return DecodeError(f"not Confluent wire format: {detail}", reason="framing")


def _named(schema_id: SchemaId) -> str:
    return (
        f"schema id {schema_id.id}" if schema_id.id is not None else f"schema GUID {schema_id.guid}"
    )


class ConfluentDecoder(Decoder):
    """The Confluent wire format; writer schemas fetched by id or GUID from a Schema Registry.

    Constructing it does not touch the network: a schema is looked up the first time a
    record carries its id, then kept for the decoder's life (ids are immutable in a registry).
    """

    codec: Codec = "confluent"

    def __init__(self, reader: AvroSchema, client: SchemaRegistryClient, where: str) -> None:
        from confluent_kafka.schema_registry import dual_schema_id_deserializer
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.schema_registry.serde import SchemaId

        super().__init__(reader)
        self.client = client
        self.where = where
        # Used for its writer lookup and its parsing of references, not its per-record path;
        # without a reader schema, constructing it parses nothing and asks nothing.
        self._deserializer = AvroDeserializer(client)
        self._frame = dual_schema_id_deserializer
        self._new_id = SchemaId
        self._writers: dict[int | UUID, Writer] = {}
        self._rejected: TTLCache[int | UUID, tuple[str, str]] = TTLCache(
            maxsize=_UNKNOWN_ID_CACHE_SIZE, ttl=_UNKNOWN_ID_TTL_S
        )

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        writers, frame, new_id = self._writers, self._frame, self._new_id
        decoded: list[dict[str, Any] | DecodeError] = []
        append = decoded.append
        for value in values:
            if value is None:
                append(null_value())
                continue
            schema_id = new_id(_AVRO)
            try:
                payload = frame(value, None, schema_id)
            except Exception:  # noqa: BLE001
                # A bad magic byte (SerializationError) or a value shorter than its header
                # (struct.error, ValueError from the GUID): this record's failure only.
                append(_framing(value))
                continue
            key = schema_id.id if schema_id.id is not None else schema_id.guid
            assert key is not None  # framing sets one of them
            writer = writers.get(key) or self._fetch(schema_id, key)
            if isinstance(writer, DecodeError):
                append(writer)
            else:
                # Read again from the datum's offset: one reader for every codec, and the
                # schemaless hot path's left as it was.
                append(read(value, payload.tell(), writer))
        return decoded

    def _fetch(self, schema_id: SchemaId, key: int | UUID) -> Writer | DecodeError:
        rejected = self._rejected.get(key)
        if rejected is not None:
            return DecodeError(rejected[0], reason=rejected[1])
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        named = _named(schema_id)
        try:
            # The deserializer's own lookup (by id or GUID) and parse (references resolved
            # from the registry): not public API, but alike in 2.12 (the floor) and 2.16;
            # tests/unit/test_codecs.py holds our records equal to its public path's.
            registered = self._deserializer._get_writer_schema(schema_id)
            if registered.schema_type not in (None, _AVRO):
                return self._reject(
                    key, f"{named} is a {registered.schema_type} schema, not Avro", "incompatible"
                )
            parsed = self._deserializer._get_parsed_schema(registered)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return self._reject(
                    key,
                    f"unknown {named}: not in the schema registry at {self.where}",
                    "unknown-schema",
                )
            raise RegistryError(f"schema registry at {self.where} refused {named}: {exc}") from exc
        except (ValueError, TypeError, SchemaParseException) as exc:
            return self._reject(
                key,
                f"{named} in the registry is not a valid Avro schema: {exc}",
                "incompatible",
            )
        except Exception as exc:
            # Connection refused, timeouts, TLS: the registry is down, not the record bad.
            raise RegistryError(
                f"schema registry at {self.where} unreachable fetching {named}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        origin = (
            f", registry id {schema_id.id}"
            if schema_id.id is not None
            else f", registry GUID {schema_id.guid}"
        )
        writer = pair(AvroSchema.of(parsed, registered.schema_str or ""), self.reader, origin)
        self._writers[key] = writer
        return writer

    def _reject(self, key: int | UUID, message: str, reason: str) -> DecodeError:
        self._rejected[key] = (message, reason)
        return DecodeError(message, reason=reason)


class ConfluentEncoder(Encoder):
    """Writes through confluent-kafka's `AvroSerializer`, which frames each value with the
    schema's id (V0). The schema is registered under `subject` on first use (registering is
    idempotent: an already registered schema gets its existing id)."""

    codec: Codec = "confluent"

    def __init__(
        self, schema: AvroSchema, client: SchemaRegistryClient, where: str, subject: str
    ) -> None:
        from confluent_kafka.schema_registry import Schema as RegistrySchema
        from confluent_kafka.schema_registry.avro import AvroSerializer

        super().__init__(schema)
        self.client = client
        self.where = where
        self.subject = subject
        # The text as written, not re-serialised: the registry keeps what it is given, and a
        # consumer comparing texts (or a second registration) must see the same schema.
        self._registered_schema: RegistrySchema = RegistrySchema(schema.text, _AVRO)
        self._schema_id: int | None = None
        # The serializer only looks the schema up (`schema_id` registers it): confluent-kafka
        # 2.12 answers a client's second registration of one schema from a cache that mixes
        # up the id, the GUID and the subject (fixed by 2.16); its lookups are sound.
        self._serializer = AvroSerializer(
            client,
            self._registered_schema,
            conf={"auto.register.schemas": False, "subject.name.strategy": self._subject},
        )

    def _subject(self, _ctx: Any, _record_name: str | None) -> str:
        return self.subject

    @property
    def schema_id(self) -> int:
        """The schema's id in the registry (registering it if needed)."""
        if self._schema_id is None:
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            try:
                try:
                    found = self.client.lookup_schema(self.subject, self._registered_schema)
                    schema_id = found.schema_id
                except SchemaRegistryError as exc:
                    if exc.http_status_code != 404:
                        raise
                    schema_id = self.client.register_schema(self.subject, self._registered_schema)
                self._schema_id = int(schema_id)  # type: ignore[arg-type]
            except Exception as exc:
                raise RegistryError(
                    f"schema registry at {self.where} did not register {self.schema.name} "
                    f"under subject {self.subject!r}: {exc}"
                ) from exc
        return self._schema_id

    def encode(self, record: Mapping[str, Any]) -> bytes:
        # Registration first, so that a registry failure is a RegistryError and the
        # serializer's own errors are the record's.
        self.schema_id  # noqa: B018
        try:
            value: bytes = self._serializer(record, None)
        except Exception as exc:
            raise self.mismatch(record, exc) from exc
        return value
