"""The codecs by name: one table of `{codec: (decoder factory, encoder factory)}`, and
`make_decoder` / `make_encoder` over it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from packflow.errors import ConfigError

from .base import AvroSchema, Codec, Decoder, Encoder, load_record_schema
from .confluent import ConfluentDecoder, ConfluentEncoder, client_for
from .schemaless import SchemalessDecoder, SchemalessEncoder
from .single_object import SingleObjectDecoder, SingleObjectEncoder

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient


@dataclass(frozen=True, slots=True)
class Options:
    """What `make_decoder` and `make_encoder` were given besides the codec and the schema."""

    writer_schema: str | None = None
    known_schemas: Sequence[str] = ()
    registry_url: str | None = None
    registry_client: SchemaRegistryClient | None = None
    subject: str | None = None
    registry_config: Mapping[str, str] | None = None


def _schemaless_decoder(reader: AvroSchema, options: Options) -> Decoder:
    writer = options.writer_schema
    return SchemalessDecoder(reader, AvroSchema.load(writer) if writer is not None else None)


def _single_object_decoder(reader: AvroSchema, options: Options) -> Decoder:
    return SingleObjectDecoder(reader, [AvroSchema.load(name) for name in options.known_schemas])


def _confluent_decoder(reader: AvroSchema, options: Options) -> Decoder:
    return ConfluentDecoder(reader, *_client(options))


def _confluent_encoder(writer: AvroSchema, options: Options) -> Encoder:
    client, where = _client(options)
    return ConfluentEncoder(writer, client, where, options.subject or writer.name)


def _client(options: Options) -> tuple[SchemaRegistryClient, str]:
    return client_for(options.registry_url, options.registry_client, options.registry_config)


DecoderFactory = Callable[[AvroSchema, Options], Decoder]
EncoderFactory = Callable[[AvroSchema, Options], Encoder]

CODEC_TABLE: dict[str, tuple[DecoderFactory, EncoderFactory]] = {
    "schemaless": (_schemaless_decoder, lambda writer, _: SchemalessEncoder(writer)),
    "single-object": (_single_object_decoder, lambda writer, _: SingleObjectEncoder(writer)),
    "confluent": (_confluent_decoder, _confluent_encoder),
}
CODECS: tuple[Codec, ...] = get_args(Codec)
"""the codecs' names, as the `Codec` type spells them (a test holds them equal to the table's)"""

# The decoder options that only one codec reads: given to another, they would be ignored, so
# they are an error instead. The registry options and `subject` are passed for every codec (by
# the runtime, from its settings) and only the confluent codec reads them.
_ONLY_FOR: dict[str, Codec] = {"writer_schema": "schemaless", "known_schemas": "single-object"}


def _factories(codec: str) -> tuple[DecoderFactory, EncoderFactory]:
    factories = CODEC_TABLE.get(codec)
    if factories is None:
        raise ConfigError(
            [("codec", f"unknown codec {codec!r}: choose one of {', '.join(CODEC_TABLE)}")],
            subject="Avro codec",
        )
    return factories


def make_decoder(
    codec: Codec,
    schema: str,
    *,
    writer_schema: str | None = None,
    known_schemas: Sequence[str] = (),
    registry_url: str | None = None,
    registry_client: SchemaRegistryClient | None = None,
    registry_config: Mapping[str, str] | None = None,
) -> Decoder:
    """The decoder for `codec` with `schema` (shipped name or `.avsc` path) as reader schema.

    `writer_schema` applies to `schemaless` only (default: the reader schema); `known_schemas`
    to `single-object` only (the writers it can find by fingerprint, besides the reader);
    `registry_url` or `registry_client` to `confluent` only. Raises `ConfigError` for a
    misplaced or missing argument, `SchemaError` for a schema that cannot be loaded.
    """
    factory = _factories(codec)[0]
    options = Options(
        writer_schema,
        tuple(known_schemas),
        registry_url,
        registry_client,
        registry_config=registry_config,
    )
    given = {"writer_schema": writer_schema is not None, "known_schemas": bool(known_schemas)}
    problems = [
        (name, f"applies to codec {only!r} only, not {codec!r}")
        for name, only in _ONLY_FOR.items()
        if given[name] and codec != only
    ]
    if problems:
        raise ConfigError(problems, subject="Avro codec")
    return factory(load_record_schema(schema, "reader"), options)


def make_encoder(
    codec: Codec,
    schema: str,
    *,
    registry_url: str | None = None,
    registry_client: SchemaRegistryClient | None = None,
    subject: str | None = None,
    registry_config: Mapping[str, str] | None = None,
) -> Encoder:
    """The encoder for `codec` writing with `schema` (shipped name or `.avsc` path).

    For `confluent`, the schema is registered under `subject` (pass `<topic>-value` for the
    usual topic name strategy; default: the record's full name, as the record name strategy).
    """
    factory = _factories(codec)[1]
    options = Options(
        registry_url=registry_url,
        registry_client=registry_client,
        subject=subject,
        registry_config=registry_config,
    )
    return factory(AvroSchema.load(schema), options)
