"""Reading sample records: JSON lines and Avro container files, and their errors."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import pytest

from packflow import SampleError
from packflow.samples import read_records


def avro_bytes(schema: object, records: list[object]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return out.getvalue()


def test_json_lines_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": [1, 2]}\n')
    assert list(read_records(path)) == [{"a": 1}, {"b": [1, 2]}]


def test_avro_is_told_by_content_not_name(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "double"}]}
    path = tmp_path / "records.data"
    path.write_bytes(avro_bytes(schema, [{"x": 1.5}, {"x": -2.0}]))
    assert list(read_records(path)) == [{"x": 1.5}, {"x": -2.0}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n{"a": \n', "in.jsonl:2: not valid JSON"),
        (b'"just a string"\n', "in.jsonl:1: JSON str, not an object"),
    ],
)
def test_bad_json_lines_name_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    with pytest.raises(SampleError, match=message):
        list(read_records(path))


def test_avro_of_non_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ints.avro"
    path.write_bytes(avro_bytes("long", [1, 2]))
    with pytest.raises(SampleError, match="Avro datum 0 is int, not a record"):
        list(read_records(path))


def test_truncated_avro_is_an_error(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    data = avro_bytes(schema, [{"s": "x" * 100}] * 5)
    path = tmp_path / "cut.avro"
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(SampleError, match="unreadable Avro container"):
        list(read_records(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="cannot read .*absent.jsonl: No such file or directory"):
        read_records(tmp_path / "absent.jsonl")
