"""`schemaless`: the bare Avro datum. The writer schema is the reader schema unless another one
is named (`writer_schema`). This is the runtime's default and its hot path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import DecodeError
from .base import AvroSchema, Codec, Decoder, HeaderEncoder, null_value, pair, read


class SchemalessDecoder(Decoder):
    """Bare Avro datums written with one known writer schema."""

    codec: Codec = "schemaless"

    def __init__(self, reader: AvroSchema, writer: AvroSchema | None = None) -> None:
        super().__init__(reader)
        self.writer = writer or reader
        self._pair = pair(self.writer, reader)

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        writer = self._pair
        return [null_value() if value is None else read(value, 0, writer) for value in values]


class SchemalessEncoder(HeaderEncoder):
    codec: Codec = "schemaless"

    def __init__(self, schema: AvroSchema) -> None:
        super().__init__(schema, b"")
