"""`single-object`: Avro's single-object encoding, `0xC3 0x01`, the writer schema's 8-byte
CRC-64-AVRO (Rabin) fingerprint, then the datum. The writer is found by its fingerprint among
the reader schema and the `known_schemas`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import DecodeError
from .base import AvroSchema, Codec, Decoder, HeaderEncoder, first_bytes, null_value, pair, read

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10


class SingleObjectDecoder(Decoder):
    """Avro single-object encoding; writers found by fingerprint among known schemas."""

    codec: Codec = "single-object"

    def __init__(self, reader: AvroSchema, known: Sequence[AvroSchema] = ()) -> None:
        super().__init__(reader)
        self._writers = {
            schema.fingerprint: pair(schema, reader, f", fingerprint 0x{schema.fingerprint.hex()}")
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
                append(null_value())
            elif value[:2] != MAGIC:
                append(
                    DecodeError(
                        "not Avro single-object encoding: first bytes "
                        f"{first_bytes(value, 2)} (expected 0xc3 0x01)",
                        reason="framing",
                    )
                )
            elif len(value) < HEADER_SIZE:
                append(
                    DecodeError(
                        f"not Avro single-object encoding: {len(value)} bytes, shorter than "
                        f"its {HEADER_SIZE}-byte header",
                        reason="framing",
                    )
                )
            else:
                writer = writers.get(value[2:HEADER_SIZE])
                if writer is None:
                    append(
                        DecodeError(
                            f"unknown schema fingerprint 0x{value[2:HEADER_SIZE].hex()}: known "
                            f"are {self._known}",
                            reason="unknown-schema",
                        )
                    )
                else:
                    append(read(value, HEADER_SIZE, writer))
        return decoded


class SingleObjectEncoder(HeaderEncoder):
    codec: Codec = "single-object"

    def __init__(self, schema: AvroSchema) -> None:
        super().__init__(schema, MAGIC + schema.fingerprint)
