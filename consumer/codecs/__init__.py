"""Avro codecs: input messages' bytes -> records, records -> bytes (producers), and results ->
bytes on the results topic. One module per wire format over `base`:

- `schemaless`: the bare Avro datum (the default, and the hot path);
- `single_object`: Avro's single-object encoding, writers found by fingerprint;
- `confluent`: the Confluent wire format (V0 schema ids, V1 GUIDs) through confluent-kafka's
  Schema Registry serdes;
- `results`: JSON or Avro results, and reading them back.

All read with fastavro and resolve the writer schema to the reader schema per the Avro spec
(field defaults, type promotions, aliases). Decoding is per batch and never raises for a bad
record: a `DecodeError` takes its place. `catalog` holds the table of codecs that
`make_decoder` and `make_encoder` choose from.
"""

from .base import Codec, Decoder, Encoder, rabin_fingerprint
from .catalog import make_decoder, make_encoder
from .confluent import ConfluentEncoder, registry_client, where_named
from .results import ResultEncoder, decode_result, make_result_encoder, result_schema

__all__ = [
    "Codec",
    "ConfluentEncoder",
    "Decoder",
    "Encoder",
    "ResultEncoder",
    "decode_result",
    "make_decoder",
    "make_encoder",
    "make_result_encoder",
    "rabin_fingerprint",
    "registry_client",
    "result_schema",
    "where_named",
]
