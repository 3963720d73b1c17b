"""`schemaless`: the bare Avro datum. The writer schema is the reader schema unless another one
is named (`writer_schema`). This is the runtime's default and its hot path."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Any

from ..errors import DecodeError
from .base import (
    AvroSchema,
    Codec,
    Decoder,
    HeaderEncoder,
    null_value,
    pair,
    read,
    record_reader,
)


class SchemalessDecoder(Decoder):
    """Bare Avro datums written with one known writer schema."""

    codec: Codec = "schemaless"

    def __init__(self, reader: AvroSchema, writer: AvroSchema | None = None) -> None:
        super().__init__(reader)
        self.writer = writer or reader
        self._pair = pair(self.writer, reader)
        self._reader = record_reader(self._pair)

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        # `read` inlined for the datums that decode cleanly (the hot path: one Python call
        # less per record); any other is read again by `read`, which says what is wrong.
        writer = self._pair
        reader, args = self._reader
        decoded: list[dict[str, Any] | DecodeError] = []
        append = decoded.append
        for value in values:
            if value is None:
                append(null_value())
                continue
            buffer = BytesIO(value)
            try:
                record = reader(buffer, *args)
            except Exception:  # noqa: BLE001
                append(read(value, 0, writer))
                continue
            if type(record) is dict and buffer.tell() == len(value):
                append(record)
            else:
                append(read(value, 0, writer))
        return decoded


class SchemalessEncoder(HeaderEncoder):
    codec: Codec = "schemaless"

    def __init__(self, schema: AvroSchema) -> None:
        super().__init__(schema, b"")
