"""Avro codecs: round trips of each wire format, schema evolution, bad records isolated in their
slot, and byte-exact results. The confluent codec runs against confluent-kafka's in-memory mock
registry here; tests/integration/test_schema_registry.py runs it against a real registry."""

from __future__ import annotations

import importlib.util
import json
import socket
from collections.abc import Callable
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any, get_args
from uuid import UUID

import fastavro
import numpy as np
import orjson
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from packflow.errors import ConfigError
from packflow.runtime.codecs import (
    Codec,
    ConfluentEncoder,
    Decoder,
    Encoder,
    decode_result,
    make_decoder,
    make_encoder,
    make_result_encoder,
    rabin_fingerprint,
    registry_client,
    result_schema,
)
from packflow.runtime.contracts import load_schema, schema_path
from packflow.runtime.errors import DecodeError, EncodeError, RegistryError, SchemaError
from packflow.validation import ArrayRows

CODECS: list[Codec] = ["schemaless", "single-object", "confluent"]
DEMO = "packflow.demo.DemoInput"


def demo_record(i: int) -> dict[str, Any]:
    # Multiples of 1/8 are exact in float32, so decoded features equal the originals.
    return {
        "id": f"rec-{i}",
        "timestamp": 1_700_000_000_000 + i,
        **{f"x{j}": (i * 16 + j) / 8 - 20.0 for j in range(16)},
    }


RECORDS = [demo_record(i) for i in range(50)]


def schema_id_of(encoder: Encoder) -> int:
    assert isinstance(encoder, ConfluentEncoder)
    return encoder.schema_id


def write_schema(directory: Path, schema: dict[str, Any], name: str = "schema") -> str:
    path = directory / f"{name}.avsc"
    path.write_text(json.dumps(schema))
    return str(path)


def demo_v2(directory: Path) -> str:
    """demo_input plus two fields with defaults: a newer reader of records written with v1."""
    schema = json.loads(schema_path("demo_input").read_text())
    schema["fields"] += [
        {"name": "source", "type": "string", "default": "sensor"},
        {"name": "weight", "type": ["null", "double"], "default": None},
    ]
    return write_schema(directory, schema, "demo_v2")


@pytest.fixture
def mock_registry() -> SchemaRegistryClient:
    """A fresh in-memory registry (confluent-kafka's mock, which `mock://` URLs give)."""
    return SchemaRegistryClient.new_client({"url": "mock://codecs-test"})


@pytest.fixture
def codec_pair(
    mock_registry: SchemaRegistryClient,
) -> Callable[..., tuple[Encoder, Decoder]]:
    """An encoder with `writer` and a decoder with `reader`, wired as a producer and a
    consumer of one topic would be (same registry, writer known to the decoder)."""

    def make(codec: Codec, writer: str, reader: str) -> tuple[Encoder, Decoder]:
        if codec == "confluent":
            encoder = make_encoder(
                codec, writer, registry_client=mock_registry, subject="input-value"
            )
            return encoder, make_decoder(codec, reader, registry_client=mock_registry)
        encoder = make_encoder(codec, writer)
        if codec == "single-object":
            known = [writer] if writer != reader else []
            return encoder, make_decoder(codec, reader, known_schemas=known)
        return encoder, make_decoder(codec, reader, writer_schema=writer)

    return make


# -- round trips and evolution ---------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_round_trips_demo_records_exactly(
    codec: Codec, codec_pair: Callable[..., tuple[Encoder, Decoder]]
) -> None:
    encoder, decoder = codec_pair(codec, "demo_input", "demo_input")
    values = encoder.encode_batch(RECORDS)
    assert [encoder.encode(r) for r in RECORDS] == values  # the buffer is reused safely
    assert decoder.decode_batch(values) == RECORDS
    assert decoder.decode(values[7]) == RECORDS[7]


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_fills_defaults_when_an_old_writer_meets_a_new_reader(
    codec: Codec, codec_pair: Callable[..., tuple[Encoder, Decoder]], tmp_path: Path
) -> None:
    encoder, decoder = codec_pair(codec, "demo_input", demo_v2(tmp_path))
    decoded = decoder.decode_batch(encoder.encode_batch(RECORDS))
    assert decoded == [{**r, "source": "sensor", "weight": None} for r in RECORDS]


@pytest.mark.parametrize("codec", CODECS)
def test_each_codec_drops_fields_a_new_writer_added_for_an_old_reader(
    codec: Codec, codec_pair: Callable[..., tuple[Encoder, Decoder]], tmp_path: Path
) -> None:
    encoder, decoder = codec_pair(codec, demo_v2(tmp_path), "demo_input")
    new = [{**r, "source": "camera", "weight": 2.5} for r in RECORDS[:5]]
    assert decoder.decode_batch(encoder.encode_batch(new)) == RECORDS[:5]


def test_single_object_reads_records_of_several_writers_in_one_batch(tmp_path: Path) -> None:
    v2 = demo_v2(tmp_path)
    old, new = make_encoder("single-object", "demo_input"), make_encoder("single-object", v2)
    decoder = make_decoder("single-object", v2, known_schemas=["demo_input"])
    values = [old.encode(RECORDS[0]), new.encode({**RECORDS[1], "source": "camera"})]
    assert decoder.decode_batch(values) == [
        {**RECORDS[0], "source": "sensor", "weight": None},
        {**RECORDS[1], "source": "camera", "weight": None},
    ]


def test_confluent_reads_every_registered_version_of_a_subject(
    mock_registry: SchemaRegistryClient, tmp_path: Path
) -> None:
    v2 = demo_v2(tmp_path)
    old = make_encoder("confluent", "demo_input", registry_client=mock_registry, subject="in-value")
    new = make_encoder("confluent", v2, registry_client=mock_registry, subject="in-value")
    decoder = make_decoder("confluent", v2, registry_client=mock_registry)
    values = [old.encode(RECORDS[0]), new.encode({**RECORDS[1], "weight": 0.5})]
    assert values[0][1:5] != values[1][1:5]  # two schema ids
    assert decoder.decode_batch(values) == [
        {**RECORDS[0], "source": "sensor", "weight": None},
        {**RECORDS[1], "source": "sensor", "weight": 0.5},
    ]


@pytest.mark.parametrize(
    ("writer_type", "reader_type", "written", "read"),
    [
        ("int", "long", 7, 7),
        ("int", "float", 7, 7.0),
        ("int", "double", -3, -3.0),
        ("long", "double", 2**40, float(2**40)),
        ("float", "double", 1.25, 1.25),
        ("string", "bytes", "é", "é".encode()),
        ("bytes", "string", b"ok", "ok"),
        ("int", ["null", "long"], 5, 5),
    ],
)
def test_writer_types_are_promoted_to_the_reader_types(
    tmp_path: Path, writer_type: str, reader_type: Any, written: Any, read: Any
) -> None:
    def schema(kind: Any, name: str) -> str:
        fields = [{"name": "id", "type": "string"}, {"name": "value", "type": kind}]
        return write_schema(tmp_path, {"type": "record", "name": "Reading", "fields": fields}, name)

    writer, reader = schema(writer_type, "writer"), schema(reader_type, "reader")
    value = make_encoder("schemaless", writer).encode({"id": "a", "value": written})
    decoded = make_decoder("schemaless", reader, writer_schema=writer).decode(value)
    assert decoded == {"id": "a", "value": read}
    assert type(decoded["value"]) is type(read)


def test_a_writer_differing_only_in_decimal_scale_is_resolved_not_read_as_the_reader(
    tmp_path: Path,
) -> None:
    # Same parsing canonical form (scale is not part of it), different values: the writer's
    # scale must decide how its bytes are read.
    def schema(scale: int, name: str) -> str:
        decimal = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": scale}
        fields = [{"name": "d", "type": decimal}]
        return write_schema(tmp_path, {"type": "record", "name": "Money", "fields": fields}, name)

    writer, reader = schema(2, "writer"), schema(2, "reader")
    assert rabin_fingerprint(load_schema(writer)) == rabin_fingerprint(load_schema(schema(3, "s3")))
    value = make_encoder("schemaless", writer).encode({"d": Decimal("12.34")})
    assert make_decoder("schemaless", reader, writer_schema=writer).decode(value) == {
        "d": Decimal("12.34")
    }
    rescaled = make_decoder("schemaless", schema(3, "s3"), writer_schema=writer).decode(value)
    assert rescaled == {"d": Decimal("12.340")}


def test_a_writer_the_reader_cannot_resolve_is_a_decode_error(tmp_path: Path) -> None:
    fields = [{"name": "id", "type": "long"}]
    writer = write_schema(tmp_path, {"type": "record", "name": "Other", "fields": fields})
    value = make_encoder("schemaless", writer).encode({"id": 1})
    [error] = make_decoder("schemaless", "demo_input", writer_schema=writer).decode_batch([value])
    assert isinstance(error, DecodeError)
    assert error.reason == "incompatible"
    assert str(error).startswith(f"cannot resolve the writer to the reader, schema {DEMO} ")


# -- framing and fingerprints ----------------------------------------------------------------


def test_single_object_header_is_the_magic_and_the_writers_rabin_fingerprint() -> None:
    value = make_encoder("single-object", "demo_input").encode(RECORDS[0])
    canonical = fastavro.schema.to_parsing_canonical_form(load_schema("demo_input"))
    expected = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == expected == rabin_fingerprint(load_schema("demo_input"))
    assert value[10:] == make_encoder("schemaless", "demo_input").encode(RECORDS[0])
    # The Avro spec's reference fingerprint of "null", as the signed little-endian long Java
    # writes: pins the byte order of the header.
    assert int.from_bytes(rabin_fingerprint("null"), "little", signed=True) == 7195948357588979594


def test_confluent_header_is_magic_zero_and_the_registered_schema_id(
    mock_registry: SchemaRegistryClient,
) -> None:
    encoder = make_encoder(
        "confluent", "demo_input", registry_client=mock_registry, subject="demo-value"
    )
    value = encoder.encode(RECORDS[0])
    registered = mock_registry.get_latest_version("demo-value")
    assert value[0] == 0
    assert int.from_bytes(value[1:5], "big") == registered.schema_id == schema_id_of(encoder)
    assert value[5:] == make_encoder("schemaless", "demo_input").encode(RECORDS[0])
    assert json.loads(str(registered.schema.schema_str)) == json.loads(
        schema_path("demo_input").read_text()
    )


def test_confluent_subject_defaults_to_the_record_name(
    mock_registry: SchemaRegistryClient,
) -> None:
    make_encoder("confluent", "demo_input", registry_client=mock_registry).encode(RECORDS[0])
    assert mock_registry.get_subjects() == [DEMO]


def test_single_object_with_an_unknown_fingerprint_names_it(tmp_path: Path) -> None:
    v2 = demo_v2(tmp_path)
    value = make_encoder("single-object", v2).encode({**RECORDS[0], "source": "x"})
    fingerprint = rabin_fingerprint(load_schema(v2)).hex()
    known = rabin_fingerprint(load_schema("demo_input")).hex()
    decoded = make_decoder("single-object", "demo_input").decode_batch([value, value[:10]])
    for error in decoded:
        assert isinstance(error, DecodeError)
        assert error.reason == "unknown-schema"
        assert str(error) == (
            f"unknown schema fingerprint 0x{fingerprint}: known are {DEMO} (0x{known})"
        )


# -- bad records fail alone ------------------------------------------------------------------

GOOD_A, GOOD_B = RECORDS[1], RECORDS[2]


def _error(result: dict[str, Any] | DecodeError, reason: str, message: str) -> None:
    assert isinstance(result, DecodeError), result
    assert (result.reason, str(result)) == (reason, message)


def test_schemaless_bad_records_fail_in_their_slot_only() -> None:
    encoder = make_encoder("schemaless", "demo_input")
    good_a, good_b = encoder.encode(GOOD_A), encoder.encode(GOOD_B)
    corrupt = b"\x06\xff\xfe\xfd" + good_a[4:]  # id of 3 bytes that are not UTF-8
    decoded = make_decoder("schemaless", "demo_input").decode_batch(
        [good_a, None, corrupt, good_a[:-1], b"", good_a + b"\x00", good_b]
    )
    assert decoded[0] == GOOD_A and decoded[-1] == GOOD_B
    _error(decoded[1], "null", "null value (a tombstone or an empty message), not an Avro record")
    _error(
        decoded[2],
        "corrupt",
        f"corrupt Avro for schema {DEMO}: UnicodeDecodeError: 'utf-8' codec can't decode byte "
        "0xff in position 0: invalid start byte",
    )
    _error(decoded[3], "corrupt", f"corrupt Avro for schema {DEMO}: truncated (cannot read float)")
    _error(decoded[4], "corrupt", f"corrupt Avro for schema {DEMO}: truncated")
    _error(
        decoded[5], "corrupt", f"corrupt Avro for schema {DEMO}: 1 bytes left over after the record"
    )


def test_single_object_bad_records_fail_in_their_slot_only() -> None:
    encoder = make_encoder("single-object", "demo_input")
    good_a, good_b = encoder.encode(GOOD_A), encoder.encode(GOOD_B)
    decoded = make_decoder("single-object", "demo_input").decode_batch(
        [good_a, None, b"\x00\x01" + good_a[2:], good_a[:7], good_a[:-3], b"", good_b]
    )
    assert decoded[0] == GOOD_A and decoded[-1] == GOOD_B
    _error(decoded[1], "null", "null value (a tombstone or an empty message), not an Avro record")
    _error(
        decoded[2],
        "framing",
        "not Avro single-object encoding: first bytes 0x00 0x01 (expected 0xc3 0x01)",
    )
    _error(
        decoded[3],
        "framing",
        "not Avro single-object encoding: 7 bytes, shorter than its 10-byte header",
    )
    fingerprint = good_a[2:10].hex()
    _error(
        decoded[4],
        "corrupt",
        f"corrupt Avro for schema {DEMO}, fingerprint 0x{fingerprint}: truncated "
        "(cannot read float)",
    )
    _error(
        decoded[5],
        "framing",
        "not Avro single-object encoding: first bytes none (empty value) (expected 0xc3 0x01)",
    )


def test_confluent_bad_records_fail_in_their_slot_only(
    mock_registry: SchemaRegistryClient,
) -> None:
    encoder = make_encoder("confluent", "demo_input", registry_client=mock_registry, subject="s")
    good_a, good_b = encoder.encode(GOOD_A), encoder.encode(GOOD_B)
    unknown_id = b"\x00\x00\x00\x03\xe7" + good_a[5:]
    unknown_guid = b"\x01" + bytes(range(16)) + good_a[5:]
    decoded = make_decoder(
        "confluent", "demo_input", registry_client=mock_registry, registry_url="mock://codecs"
    ).decode_batch(
        [
            *(good_a, None, b"\x02" + good_a[1:], good_a[:3], unknown_id, good_a[:-1]),
            *(unknown_guid, b"\x01" + bytes(9), b"", good_b),
        ]
    )
    assert decoded[0] == GOOD_A and decoded[-1] == GOOD_B
    _error(decoded[1], "null", "null value (a tombstone or an empty message), not an Avro record")
    _error(
        decoded[2],
        "framing",
        "not Confluent wire format: magic byte 0x02 (expected 0x00, or 0x01 for a schema GUID)",
    )
    _error(
        decoded[3], "framing", "not Confluent wire format: 3 bytes, shorter than its 5-byte header"
    )
    _error(
        decoded[6],
        "unknown-schema",
        "unknown schema GUID 00010203-0405-0607-0809-0a0b0c0d0e0f: not in the schema registry "
        "at mock://codecs",
    )
    _error(
        decoded[7],
        "framing",
        "not Confluent wire format: 10 bytes, shorter than its 17-byte header",
    )
    _error(
        decoded[8], "framing", "not Confluent wire format: 0 bytes, shorter than its 5-byte header"
    )
    _error(
        decoded[4],
        "unknown-schema",
        "unknown schema id 999: not in the schema registry at mock://codecs",
    )
    _error(
        decoded[5],
        "corrupt",
        f"corrupt Avro for schema {DEMO}, registry id {schema_id_of(encoder)}: truncated "
        "(cannot read float)",
    )


def test_decode_raises_the_records_decode_error() -> None:
    with pytest.raises(DecodeError, match="^null value"):
        make_decoder("schemaless", "demo_input").decode(None)


def test_confluent_asks_the_registry_once_per_schema_id(
    mock_registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = mock_registry
    lookups: list[int] = []
    get_schema = registry.get_schema

    def counting(schema_id: int, *args: Any, **kwargs: Any) -> Schema:
        lookups.append(schema_id)
        return get_schema(schema_id, *args, **kwargs)

    monkeypatch.setattr(registry, "get_schema", counting)
    encoder = make_encoder("confluent", "demo_input", registry_client=registry, subject="s")
    decoder = make_decoder("confluent", "demo_input", registry_client=registry)
    values = encoder.encode_batch(RECORDS)
    unknown = b"\x00\x00\x00\x00\x63" + values[0][5:]
    assert decoder.decode_batch(values) == RECORDS
    assert decoder.decode_batch([*values[:3], unknown, unknown, unknown])[:3] == RECORDS[:3]
    assert lookups == [schema_id_of(encoder), 99]


def test_confluent_schema_of_another_type_is_a_decode_error(
    mock_registry: SchemaRegistryClient,
) -> None:
    schema_id = mock_registry.register_schema("j", Schema('{"type": "object"}', "JSON"))
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02"
    [error] = make_decoder("confluent", "demo_input", registry_client=mock_registry).decode_batch(
        [value]
    )
    _error(error, "incompatible", f"schema id {schema_id} is a JSON schema, not Avro")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_registry_fails_the_batch_not_the_records() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = SchemaRegistryClient({"url": url, "max.retries": 0, "timeout": 2})
    decoder = make_decoder("confluent", "demo_input", registry_client=client, registry_url=url)
    value = b"\x00\x00\x00\x00\x01" + make_encoder("schemaless", "demo_input").encode(GOOD_A)
    with pytest.raises(RegistryError, match=f"^schema registry at {url} unreachable"):
        decoder.decode_batch([value])


def test_constructing_confluent_codecs_touches_no_network() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    make_decoder("confluent", "demo_input", registry_url=url)
    make_encoder("confluent", "demo_input", registry_url=url, subject="s")


def test_registry_clients_are_shared_per_url_so_mock_urls_work_across_codecs() -> None:
    url = "mock://shared-by-url"
    assert registry_client(url) is registry_client(url)
    encoder = make_encoder("confluent", "demo_input", registry_url=url, subject="s")
    decoder = make_decoder("confluent", "demo_input", registry_url=url)
    assert decoder.decode_batch(encoder.encode_batch(RECORDS[:3])) == RECORDS[:3]


# -- through confluent-kafka's serdes --------------------------------------------------------

LOCATION = {
    "type": "record",
    "name": "Location",
    "namespace": "packflow.test",
    "fields": [{"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}],
}
READING_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"},
    {"name": "value", "type": "float"},
]
PLACED = [
    {"id": f"r{i}", "value": i / 4, "where": {"lat": 52.5 + i, "lon": -i / 8}} for i in range(5)
]


def placed_schemas(directory: Path) -> tuple[str, str]:
    """A reading whose `where` is a Location: the text that references the Location by name
    (as registered, with a schema reference), and a self-contained reader schema file."""
    referencing = {
        "type": "record",
        "name": "Placed",
        "namespace": "packflow.test",
        "fields": [*READING_FIELDS, {"name": "where", "type": "packflow.test.Location"}],
    }
    reader = {**referencing, "fields": [*READING_FIELDS, {"name": "where", "type": LOCATION}]}
    return json.dumps(referencing), write_schema(directory, reader, "placed")


def test_confluent_decodes_what_confluent_kafkas_serializer_wrote_with_a_schema_reference(
    mock_registry: SchemaRegistryClient, tmp_path: Path
) -> None:
    from confluent_kafka.schema_registry import SchemaReference
    from confluent_kafka.schema_registry.avro import AvroSerializer

    mock_registry.register_schema("location-value", Schema(json.dumps(LOCATION), "AVRO"))
    referencing, reader = placed_schemas(tmp_path)
    reference = SchemaReference("packflow.test.Location", "location-value", 1)
    serializer = AvroSerializer(mock_registry, Schema(referencing, "AVRO", [reference]))
    values = [serializer(r, SerializationContext("placed", MessageField.VALUE)) for r in PLACED]
    assert {v[0] for v in values if v} == {0}  # V0: magic 0 and a 4-byte id
    decoder = make_decoder("confluent", reader, registry_client=mock_registry)
    assert decoder.decode_batch(values) == PLACED


def test_confluent_decodes_v1_framing_with_the_schemas_guid(
    mock_registry: SchemaRegistryClient,
) -> None:
    from confluent_kafka.schema_registry.avro import AvroSerializer

    def guid_prefix(payload: bytes, _ctx: Any, schema_id: Any) -> bytes:
        return bytes(schema_id.guid_to_bytes()) + payload

    text = schema_path("demo_input").read_text()
    serializer = AvroSerializer(
        mock_registry, Schema(text, "AVRO"), conf={"schema.id.serializer": guid_prefix}
    )
    values = [serializer(r, SerializationContext("v1", MessageField.VALUE)) for r in RECORDS]
    guid = mock_registry.get_latest_version("v1-value").guid
    assert values[0] is not None and values[0][:17] == b"\x01" + UUID(str(guid)).bytes
    decoder = make_decoder("confluent", "demo_input", registry_client=mock_registry)
    assert decoder.decode_batch(values) == RECORDS
    truncated = values[0][:-1]
    _error(
        decoder.decode_batch([truncated])[0],
        "corrupt",
        f"corrupt Avro for schema {DEMO}, registry GUID {guid}: truncated (cannot read float)",
    )


def test_confluent_codecs_agree_with_confluent_kafkas_serializer_and_deserializer(
    mock_registry: SchemaRegistryClient, tmp_path: Path
) -> None:
    # The decoder uses the AvroDeserializer's writer lookup but reads datums itself: both
    # must give the same records, and the encoder the serializer's bytes.
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    v2 = demo_v2(tmp_path)
    encoder = make_encoder("confluent", "demo_input", registry_client=mock_registry, subject="a")
    serializer = AvroSerializer(
        mock_registry,
        Schema(schema_path("demo_input").read_text(), "AVRO"),
        conf={"subject.name.strategy": lambda _ctx, _name: "a"},
    )
    values = encoder.encode_batch(RECORDS)
    assert values == [serializer(r, None) for r in RECORDS]
    theirs = AvroDeserializer(mock_registry, Path(v2).read_text())
    ours = make_decoder("confluent", v2, registry_client=mock_registry)
    assert ours.decode_batch(values) == [theirs(v, None) for v in values]
    assert ours.decode_batch(values)[0] == {**RECORDS[0], "source": "sensor", "weight": None}


def test_codec_table_names_every_codec_and_the_package_exports_sorted_names() -> None:
    from packflow.runtime import codecs
    from packflow.runtime.codecs.catalog import CODEC_TABLE, CODECS

    assert tuple(CODEC_TABLE) == CODECS == get_args(Codec)
    assert codecs.__all__ == sorted(codecs.__all__)
    assert all(hasattr(codecs, name) for name in codecs.__all__)


# -- settings errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "kwargs", "field"),
    [
        ("avro", {}, "codec"),
        ("confluent", {}, "registry_url"),
        ("confluent", {"writer_schema": "demo_input", "registry_url": "mock://x"}, "writer_schema"),
        ("schemaless", {"known_schemas": ["demo_input"]}, "known_schemas"),
    ],
)
def test_misconfigured_decoders_name_the_setting(
    codec: Any, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_decoder(codec, "demo_input", **kwargs)
    assert raised.value.fields == (field,)


def test_reader_schema_must_be_a_record(tmp_path: Path) -> None:
    enum = write_schema(tmp_path, {"type": "enum", "name": "E", "symbols": ["A"]})
    with pytest.raises(SchemaError, match="must be an Avro record"):
        make_decoder("schemaless", enum)
    with pytest.raises(SchemaError, match="no schema 'nope'"):
        make_decoder("schemaless", "nope")


def test_encoding_a_record_that_does_not_fit_names_the_field() -> None:
    encoder = make_encoder("schemaless", "demo_input")
    with pytest.raises(EncodeError) as raised:
        encoder.encode({**GOOD_A, "x3": "high"})
    assert str(raised.value) == (
        f"record does not match schema {DEMO}: {DEMO}.x3 is <high> of type <class 'str'> "
        "expected float"
    )
    missing = dict(GOOD_A)
    del missing["x3"]
    with pytest.raises(EncodeError, match=rf"Field\({DEMO}.x3\) is None expected float"):
        encoder.encode(missing)
    assert encoder.encode(GOOD_B) == make_encoder("schemaless", "demo_input").encode(GOOD_B)


RICH = {
    "type": "record",
    "name": "Rich",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
        },
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "maybe", "type": ["null", "double"]},
        {
            "name": "home",
            "type": {
                "type": "record",
                "name": "Place",
                "fields": [{"name": "lat", "type": "float"}, {"name": "tags", "type": {
                    "type": "map", "values": {"type": "array", "items": "int"}}}],
            },
        },
        {"name": "work", "type": ["null", "Place"]},  # a reference to a named type
        {"name": "raw", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "flag", "type": "boolean"},
    ],
}  # fmt: skip


def test_the_schemaless_decoder_reads_what_schemaless_reader_reads(tmp_path: Path) -> None:
    # The decoder calls the compiled record reader directly (record_reader): values must be
    # those of the public call, for every kind of field, named references included.
    schema = write_schema(tmp_path, RICH)
    decoder = make_decoder("schemaless", schema)
    parsed = fastavro.parse_schema(RICH)
    place = {"lat": 1.5, "tags": {"a": [1, -2], "b": []}}
    base = {"id": "r1", "at": 1732521600123, "uid": "6a2f41a3-c54c-fce8-32d2-0324e1c32e22"}
    datums = [
        base | {"price": Decimal("12.34"), "kind": "B", "maybe": None, "home": place,
                "work": None, "raw": b"abcd", "flag": True},
        base | {"price": Decimal("-0.01"), "kind": "A", "maybe": 2.25, "home": place,
                "work": {"lat": -3.0, "tags": {}}, "raw": b"\x00\x01\x02\x03", "flag": False},
    ]  # fmt: skip
    values = [make_encoder("schemaless", schema).encode(d) for d in datums]
    expected = [fastavro.schemaless_reader(BytesIO(v), parsed, None) for v in values]
    assert decoder.decode_batch(values) == expected
    reader, args = decoder._reader  # itself, not through the decoder's fallback to `read`
    assert [reader(BytesIO(v), *args) for v in values] == expected
    assert expected[1]["work"] == {"lat": -3.0, "tags": {}}
    demo = make_decoder("schemaless", "demo_input")
    compiled = importlib.util.find_spec("fastavro._read") is not None
    assert demo._reader[0].__name__ == ("read_record" if compiled else "schemaless_reader")


# -- results ---------------------------------------------------------------------------------

KEYS = ["k1", "k2"]
OUTPUTS: list[Any] = [{"score": 0.75, "label": "cat", "extra": {"z": None, "a": "é"}}, [1, 2.5]]


def test_json_results_are_exactly_the_sorted_keys_json_and_identical_across_calls() -> None:
    values = make_result_encoder("json").encode_batch(KEYS, OUTPUTS, "echo", "1.0")
    assert values == [
        (
            b'{"backend":"echo","backend_version":"1.0","key":"k1",'
            b'"output":{"extra":{"a":"\xc3\xa9","z":null},"label":"cat","score":0.75}}'
        ),
        b'{"backend":"echo","backend_version":"1.0","key":"k2","output":[1,2.5]}',
    ]
    for key, output, value in zip(KEYS, OUTPUTS, values, strict=True):
        expected = {"key": key, "backend": "echo", "backend_version": "1.0", "output": output}
        assert value == orjson.dumps(expected, option=orjson.OPT_SORT_KEYS)
    # The same inputs, in another order of dict keys and through a new encoder: same bytes.
    reordered = [dict(reversed(list(OUTPUTS[0].items()))), OUTPUTS[1]]
    assert make_result_encoder("json").encode_batch(KEYS, reordered, "echo", "1.0") == values


def test_json_results_put_together_from_parts_are_the_bytes_of_one_dumps_of_the_dict() -> None:
    # The encoder joins a per-batch head, the key and the output: awkward names, keys and
    # outputs must still give exactly what orjson gives for the whole sorted-keys dict.
    rows = ArrayRows({"v": np.array([[0.5, -1.25], [3.0, 1e-7]]), "n": np.array([1, 2])})
    keys = ['q"uote', "back\\slash", "é\u2028\n", "", "rows-0", "none", "nested"]
    outputs: list[Any] = [
        {"b": 1, "a": [{"y": 2, "x": 1}]},
        "text",
        0.1 + 0.2,
        [],
        rows[0],
        None,
        {"z": {"é": True, "a": False}, "": -0.0},
    ]
    for backend, version in [("echo", "1.0"), ('we"ird\\name', "ü 2")]:
        values = make_result_encoder("json").encode_batch(keys, outputs, backend, version)
        for key, output, value in zip(keys, outputs, values, strict=True):
            whole = {"output": output, "key": key, "backend_version": version, "backend": backend}
            assert value == orjson.dumps(
                whole, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
            )


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_results_round_trip_through_decode_result(fmt: Any) -> None:
    encoder = make_result_encoder(fmt)
    values = encoder.encode_batch(KEYS, OUTPUTS, "echo", "1.0")
    assert encoder.encode_batch(KEYS, OUTPUTS, "echo", "1.0") == values
    assert [decode_result(v, fmt) for v in values] == [
        {"key": k, "backend": "echo", "backend_version": "1.0", "output": o}
        for k, o in zip(KEYS, OUTPUTS, strict=True)
    ]


def test_avro_results_are_result_avsc_with_the_output_as_sorted_keys_json() -> None:
    [value] = make_result_encoder("avro").encode_batch(["k1"], OUTPUTS[:1], "echo", "1.0")
    raw = make_decoder("schemaless", "result").decode(value)
    assert raw == {
        "key": "k1",
        "backend": "echo",
        "backend_version": "1.0",
        "output": '{"extra":{"a":"é","z":null},"label":"cat","score":0.75}',
    }
    assert result_schema().name == "packflow.Result"


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_an_output_orjson_cannot_serialise_names_its_key(fmt: Any) -> None:
    with pytest.raises(EncodeError) as raised:
        make_result_encoder(fmt).encode_batch(KEYS, [OUTPUTS[0], {1, 2}], "echo", "1.0")
    assert raised.value.key == "k2"
    assert (
        str(raised.value)
        == "output for key 'k2' is not JSON-serialisable: Type is not JSON serializable: set"
    )


@pytest.mark.parametrize("fmt", ["json", "avro"])
@pytest.mark.parametrize("decimals", [None, 1, 6, 9])
def test_array_rows_are_published_as_their_tolist_would_be_byte_for_byte(
    fmt: Any, decimals: int | None
) -> None:
    rng = np.random.default_rng(decimals or 0)
    # Unit vectors as the text-embedding backend writes them, and numbers of every magnitude
    # (exponent notation both ways), signed zeros, integers, extremes.
    unit = rng.normal(size=(64, 384)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    wide = rng.normal(size=(64, 384)) * 10.0 ** rng.integers(-30, 30, size=(64, 384))
    special = np.array([0.0, -0.0, 1.0, -1.0, 1e-7, 5e-7, 1e-6, 1e-5, 1e16, 1e17, 2.0**53])
    wide[0, : len(special)] = special
    if decimals is None:  # rounding the largest would overflow
        wide[1, :3] = [np.finfo(np.float64).max, np.finfo(np.float64).tiny, 5e-324]
    for values in (unit.astype(np.float64), wide):
        if decimals is not None:
            values = np.round(values, decimals)
        rows = ArrayRows({"embedding": values, "label": np.arange(len(values))})
        keys = [f"k{i}" for i in range(len(rows))]
        encoder = make_result_encoder(fmt)
        assert encoder.encode_batch(keys, rows, "b", "1") == encoder.encode_batch(
            keys, rows.tolist(), "b", "1"
        )


def test_result_encoders_reject_mismatched_lengths_and_formats() -> None:
    with pytest.raises(ValueError, match="2 keys for 1 outputs"):
        make_result_encoder("json").encode_batch(KEYS, OUTPUTS[:1], "echo", "1.0")
    with pytest.raises(ConfigError):
        make_result_encoder("xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fmt", "reason"),
    [(None, "json", "null"), (b"{not json", "json", "corrupt"), (b"\x02", "avro", "corrupt")],
)
def test_decode_result_raises_decode_errors(value: bytes | None, fmt: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as raised:
        decode_result(value, fmt)
    assert raised.value.reason == reason
