"""The client's parts that need no broker: keys, typed results and dead letters, errors, and
that nothing is sent (or connected) before it should be."""

from __future__ import annotations

import ast
import importlib
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from confluent_kafka import Message

from packflow.errors import ConfigError, PackflowError
from packflow.runtime.client import (
    Client,
    DeadLetter,
    DeadLetters,
    PredictionFailed,
    PredictionTimeout,
    Producer,
    Result,
    Results,
    Source,
    record_key,
)
from packflow.runtime.codecs import make_decoder, make_result_encoder
from packflow.runtime.contracts import schema_path
from packflow.runtime.errors import DecodeError, EncodeError
from packflow.runtime.headers import ResultHeaders, dead_letter_headers
from packflow.runtime.settings import RuntimeSettings
from tests.runtime_io import demo_records

# Nothing listens on port 1: a client that connected would fail or hang.
NOWHERE = RuntimeSettings(bootstrap_servers="127.0.0.1:1")


@dataclass
class _Message:
    """A consumed message as confluent-kafka hands it over (its own `Message` can be made by
    hand only from confluent-kafka 2.13 on; the floor is 2.12)."""

    topic_: str | None = None
    partition_: int | None = None
    offset_: int | None = None
    key_: bytes | None = None
    value_: bytes | None = None
    headers_: list[tuple[str, bytes]] | None = None
    timestamp_: tuple[int, int] = (0, 0)

    def topic(self) -> str | None:
        return self.topic_

    def partition(self) -> int | None:
        return self.partition_

    def offset(self) -> int | None:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self.headers_

    def timestamp(self) -> tuple[int, int]:
        return self.timestamp_

    def error(self) -> None:
        return None


def a_message(**fields: Any) -> Message:
    return cast(Message, _Message(**{f"{name}_": value for name, value in fields.items()}))


def test_constructing_any_client_part_touches_nothing() -> None:
    producer = Producer(NOWHERE)
    client = Client(NOWHERE)
    assert producer._producer is None and producer._encoder is None
    assert client._answers is None and client.producer._producer is None
    results, letters = Results(NOWHERE), DeadLetters(NOWHERE)
    assert (results.topic, letters.topic) == ("packflow.results", "packflow.dead-letter")
    client.close()  # never started: nothing to stop
    producer.close()


def test_a_record_that_does_not_fit_raises_naming_the_field() -> None:
    # (That nothing of the call is sent: tests/integration/test_client.py, on the broker.)
    records = demo_records(5)
    records[3] = dict(records[3], x7="not a float")
    producer = Producer(NOWHERE)
    with pytest.raises(EncodeError, match=r"DemoInput\.x7 is <not a float> of type <class 'str'>"):
        producer.send_many(records)
    missing = {k: v for k, v in records[0].items() if k != "timestamp"}
    with pytest.raises(EncodeError, match=r"DemoInput\.timestamp\) is None expected long"):
        producer.encode(missing)
    assert producer._producer is None  # encoding connects to nothing


def test_records_are_keyed_by_their_id_field_as_the_replicas_key_results() -> None:
    assert record_key({"id": "a-1"}, "id") == "a-1"
    assert record_key({"id": 7}, "id") == "7"
    assert record_key({"other": 7}, "id") is None
    assert record_key({"id": "a-1"}, None) is None
    assert Producer(NOWHERE).key_field == "id"
    assert Producer(NOWHERE, key_field=None).key_field is None
    assert Producer(RuntimeSettings(id_field="")).key_field is None


def test_predict_needs_an_id_field() -> None:
    with pytest.raises(ConfigError, match="id_field"):
        Client(RuntimeSettings(id_field=""))


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_a_result_message_is_a_typed_result_with_its_source_when_headers_name_it(
    fmt: str,
) -> None:
    (value,) = make_result_encoder(fmt).encode_batch(  # type: ignore[arg-type]
        ["rec-1"], [{"score": 0.25, "labels": ["a"]}], "logistic", "3"
    )
    headers = ResultHeaders("logistic", "3")([("traceparent", b"00-1-2-01")], "in", 4, 99)
    message = a_message(
        topic="out", partition=2, offset=17, key=b"rec-1", value=value, headers=headers,
        timestamp=(1, 1_700_000_000_123),
    )  # fmt: skip
    result = Result.of(message, fmt)  # type: ignore[arg-type]
    assert result == Result(
        key="rec-1",
        backend="logistic",
        backend_version="3",
        output={"score": 0.25, "labels": ["a"]},
        source=Source("in", 4, 99),
        topic="out",
        partition=2,
        offset=17,
        timestamp_ms=1_700_000_000_123,
    )
    assert result.envelope() == {
        "key": "rec-1",
        "backend": "logistic",
        "backend_version": "3",
        "output": {"score": 0.25, "labels": ["a"]},
    }
    bare = Result.of(a_message(topic="out", partition=0, offset=1, key=b"rec-1", value=value), fmt)  # type: ignore[arg-type]
    assert bare.source is None


def test_a_message_that_is_no_result_is_a_decode_error_naming_where_it_lies() -> None:
    message = a_message(topic="out", partition=1, offset=5, key=b"k", value=b"{not json")
    with pytest.raises(DecodeError, match=r"out/1/5 is not a json result: corrupt JSON"):
        Result.of(message, "json")


def test_a_dead_letter_becomes_a_prediction_failed_with_its_stage_and_error() -> None:
    headers = dead_letter_headers(
        [("traceparent", b"00-1-2-01")],
        stage="backend",
        error_type="RuntimeError",
        message="model blew up",
        topic="in",
        partition=3,
        offset=8,
        backend="poisoned",
        backend_version="7",
        attempts=4,
    )
    message = a_message(
        topic="dead", partition=0, offset=2, key=b"raise-1", value=b"\x00", headers=headers
    )
    letter = DeadLetter.of(message)
    assert (letter.key_text, letter.stage, letter.error_type, letter.error_message) == (
        "raise-1",
        "backend",
        "RuntimeError",
        "model blew up",
    )
    assert letter.info["attempts"] == "4"
    assert letter.source == "in/3/8"

    from packflow.runtime.client.predict import _failure

    failed = _failure(letter)
    assert isinstance(failed, PredictionFailed)
    assert (failed.key, failed.stage, failed.error_type, failed.error_message) == (
        "raise-1",
        "backend",
        "RuntimeError",
        "model blew up",
    )
    assert failed.dead_letter is letter
    assert str(failed) == "record 'raise-1' failed at stage backend: RuntimeError: model blew up"


def test_a_timeout_names_the_pending_keys() -> None:
    timeout = PredictionTimeout(("a", "b"), 2.5)
    assert isinstance(timeout, TimeoutError)
    assert timeout.pending == ("a", "b")
    assert str(timeout) == "no result after 2.5 s for 2 record(s): 'a', 'b'"
    many = PredictionTimeout(tuple(f"k{i}" for i in range(12)), 1)
    assert str(many).endswith("'k9' and 2 more")


def test_the_documented_examples_compile_and_import_what_exists() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "CLIENT.md").read_text()
    blocks = [part.split("```", 1)[0] for part in docs.split("```python\n")[1:]]
    assert len(blocks) == 3  # producing, reading, predict
    for block in blocks:
        tree = ast.parse(block)
        assert len(block.strip().splitlines()) <= 15
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (node.module, alias.name)


def test_schemaless_records_are_written_with_the_writer_schema_the_replicas_are_told_of(
    tmp_path: Path,
) -> None:
    schema = orjson.loads(schema_path("demo_input").read_bytes())
    schema["fields"].append({"name": "site", "type": "string", "default": "north"})
    v2 = tmp_path / "demo_v2.avsc"
    v2.write_bytes(orjson.dumps(schema))
    record = dict(demo_records(1)[0], site="south")
    producer = Producer(RuntimeSettings(bootstrap_servers="127.0.0.1:1", writer_schema=str(v2)))
    _, value = producer.encode(record)
    replicas = make_decoder("schemaless", "demo_input", writer_schema=str(v2))
    assert replicas.decode(value)["id"] == record["id"]
    assert "site" not in replicas.decode(value)  # the reader schema has no such field


class _Feed:
    """Stands in for the topic reader and the producer of `_Answers` (its dispatch is what
    is tested here; tests/integration/test_client.py runs it on the broker)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Message] = queue.Queue()

    def poll(self, timeout_s: float = 0.0) -> list[Message]:
        try:
            return [self.queue.get(timeout=timeout_s or 0.01)]
        except queue.Empty:
            return []

    def close(self) -> None:
        pass


def test_the_shared_reader_answers_every_waiter_of_a_key_and_remembers_results() -> None:
    from packflow.runtime.client.predict import _Answers

    feed = _Feed()
    answers = _Answers(NOWHERE, _Feed(), "end")  # type: ignore[arg-type]
    answers.reader = feed  # type: ignore[assignment]
    answers._thread = threading.Thread(target=answers._run, daemon=True)
    answers._thread.start()
    try:
        (first_a, b, second_a, gone), fresh = answers.expect(["a", "b", "a", "c"])
        assert fresh == [True, True, True, True]
        gone.cancel()  # a caller that gave up: its answer must not break the reader
        (value,) = make_result_encoder("json").encode_batch(["a"], [{"n": 1}], "echo", "1")
        letter = dead_letter_headers(
            None, stage="validate", error_type="ValidationError", message="NaN",
            topic="in", partition=0, offset=3, backend="echo", backend_version="1",
        )  # fmt: skip
        feed.queue.put(
            a_message(topic="packflow.results", partition=0, offset=9, key=b"c", value=value)
        )
        feed.queue.put(
            a_message(topic="packflow.results", partition=0, offset=10, key=b"a", value=value)
        )
        feed.queue.put(a_message(topic="packflow.dead-letter", key=b"b", value=b"", headers=letter))
        assert first_a.result(10).output == {"n": 1} and second_a.result(10).offset == 10
        failed = b.exception(10)
        assert isinstance(failed, PredictionFailed) and failed.stage == "validate"
        (again,), fresh = answers.expect(["a"])  # answered: from memory, nothing to send
        assert fresh == [False] and again.result(0).offset == 10
        (retried,), fresh = answers.expect(["b"])  # a dead letter is not remembered
        assert fresh == [True] and not retried.done()
    finally:
        answers.close()
    assert isinstance(retried.exception(0), PackflowError)  # closed while it waited
