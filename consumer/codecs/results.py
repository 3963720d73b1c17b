"""Results on the results topic: JSON (sorted keys, so the same result always gives the same
bytes) or schemaless Avro of `schemas/result.avsc`, and `decode_result` to read either back."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any, Literal, cast

import fastavro
import orjson

from packflow.errors import ConfigError

from ..errors import DecodeError, EncodeError
from .base import AvroSchema, Writer, describe, load_record_schema, null_value, read

ResultFormat = Literal["json", "avro"]


@functools.cache
def result_schema() -> AvroSchema:
    """`schemas/result.avsc`, loaded once."""
    return load_record_schema("result", "result")


# numpy arrays are written from their buffers: a backend's `ArrayRows` (packflow.validation),
# which validation let through. Any other numpy value fails validation before it gets here.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _output_json(key: str, output: Any) -> bytes:
    try:
        return orjson.dumps(output, option=_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise EncodeError(
            f"output for key {key!r} is not JSON-serialisable: {exc}", key=key
        ) from exc


def _same_length(keys: Sequence[str], outputs: Sequence[Any]) -> None:
    if len(keys) != len(outputs):
        raise ValueError(f"{len(keys)} keys for {len(outputs)} outputs")


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
        dumps, option, join = orjson.dumps, _OPTIONS, b"".join
        # The sorted-keys JSON of {backend, backend_version, key, output} put together from
        # its parts: the same bytes as one dumps of that dict (tested), ~0.3 us per record
        # instead of ~1.3 (building and sorting the dict was most of it).
        head = b'{"backend":%b,"backend_version":%b,"key":' % (
            dumps(backend),
            dumps(backend_version),
        )
        values = []
        for key, output in zip(keys, outputs, strict=True):
            try:
                values.append(
                    join((head, dumps(key), b',"output":', dumps(output, option=option), b"}"))
                )
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
                    f"result for key {key!r} does not fit {self.schema.name}: {describe(exc)}",
                    key=key if isinstance(key, str) else None,
                ) from exc
            values.append(buffer.getvalue())
        return values


def _decode_json(value: bytes) -> dict[str, Any]:
    try:
        result = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"corrupt JSON result: {exc}", reason="corrupt") from exc
    if not isinstance(result, dict) or "output" not in result:
        raise DecodeError(
            f"not a result: {type(result).__name__} without an output", reason="corrupt"
        )
    return cast(dict[str, Any], result)


def _decode_avro(value: bytes) -> dict[str, Any]:
    schema = result_schema()
    record = read(value, 0, Writer(schema.parsed, None, f"schema {schema.name}"))
    if isinstance(record, DecodeError):
        raise record
    try:
        record["output"] = orjson.loads(record["output"])
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"corrupt JSON output in Avro result: {exc}", reason="corrupt") from exc
    return record


ResultFormatEntry = tuple[Callable[[], ResultEncoder], Callable[[bytes], dict[str, Any]]]

RESULT_FORMATS: dict[str, ResultFormatEntry] = {
    "json": (JsonResultEncoder, _decode_json),
    "avro": (AvroResultEncoder, _decode_avro),
}
"""Each result format: (its encoder, its decoder)."""


def _result_format(fmt: str, subject: str) -> ResultFormatEntry:
    try:
        return RESULT_FORMATS[fmt]
    except KeyError:
        choices = " or ".join(RESULT_FORMATS)
        raise ConfigError(
            [("result_format", f"unknown result format {fmt!r}: choose {choices}")],
            subject=subject,
        ) from None


def make_result_encoder(fmt: ResultFormat) -> ResultEncoder:
    """The results' encoder: `json` (default of the runtime) or `avro`."""
    return _result_format(fmt, "result encoder")[0]()


def decode_result(value: bytes | None, fmt: ResultFormat) -> dict[str, Any]:
    """A result message value back to `{"key", "backend", "backend_version", "output"}`, with
    `output` as the backend returned it (JSON types), whichever the format. Raises
    `DecodeError`."""
    decode = _result_format(fmt, "result decoder")[1]
    if value is None:
        raise null_value()
    return decode(value)
