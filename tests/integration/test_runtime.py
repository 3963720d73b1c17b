"""The Kafka runtime against the real broker: replicas, keys, dedup, dead letters, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from packflow.runtime.codecs import make_decoder, make_encoder
from packflow.runtime.headers import read_packflow_headers
from packflow.runtime.status import group_state
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys, produce
from tests.runtime_io import (
    PACKFLOW,
    Run,
    demo_records,
    make_pipeline,
    produce_records,
    results_by_key,
)

HERE = Path(__file__).parent
FAULTY = str(HERE / "faulty_backends.py")
LOGISTIC = "packflow.examples.logistic:Backend"


def offline_outputs(records: list[dict], tmp_path: Path) -> list[dict]:
    """What `packflow check` computes for the records as the replicas decode them."""
    decoder = make_decoder("schemaless", "demo_input")
    encoder = make_encoder("schemaless", "demo_input")
    decoded = decoder.decode_batch([encoder.encode(r) for r in records])
    sample = tmp_path / "decoded.jsonl"
    sample.write_bytes(b"\n".join(orjson.dumps(d) for d in decoded))
    checked = subprocess.run(
        [PACKFLOW, "check", LOGISTIC, "--input", str(sample), "--batch-size", "1024"],
        capture_output=True,
        check=True,
    )
    return [orjson.loads(line) for line in checked.stdout.splitlines()]


def test_three_replicas_answer_each_of_100k_records_once_as_check_does(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(100_000)
    run = Run(
        pipeline, tmp_path / "run.log", "--backend", LOGISTIC, "--replicas", "3", "--result-headers"
    )
    try:
        # All three in the group before any input, so the work is really shared.
        run.wait_for_replicas(3)
        produce_records(pipeline, records)
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(100_000), timeout=240)
    finally:
        code = run.terminate()
    assert code == 0

    by_key = results_by_key(got)
    ids = [r["id"] for r in records]
    assert sorted(by_key) == sorted(ids)
    assert len(got) == 100_000  # exactly one result per key
    expected = offline_outputs(records, tmp_path)
    for record, output in zip(records, expected, strict=True):
        (result,) = by_key[record["id"]]
        assert result == {
            "key": record["id"],
            "backend": "logistic",
            "backend_version": "1",
            "output": output,
        }
    headers = read_packflow_headers(got[0].headers())
    assert headers["source.topic"] == pipeline.input
    stopped = run.events("replica_stopped")
    assert sorted(e["replica"] for e in stopped) == [0, 1, 2]
    assert all(e["records_in"] > 0 for e in stopped)  # the work was shared
    assert sum(e["results"] for e in stopped) == 100_000


def test_shuffled_duplicated_input_from_three_producers_is_answered_once_per_key(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    count = 3000
    # Both replicas hold their partitions before any input: the copies of a key share its
    # partition, so one replica sees them all and only its repeat cache can drop them.
    run = Run(pipeline, tmp_path / "run.log", "--backend", LOGISTIC, "--replicas", "2")
    try:
        run.wait_for_replicas(2)
        producers = [
            subprocess.Popen(
                [
                    PACKFLOW,
                    "produce",
                    "--generate",
                    str(count),
                    "--seed",
                    "11",
                    "--topic",
                    pipeline.input,
                    "--bootstrap-servers",
                    kafka_bootstrap,
                ],
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        # The third producer sends the same records shuffled.
        shuffled = demo_records(count, seed=11)
        order = list(range(count))
        __import__("random").Random(5).shuffle(order)
        produce_records(pipeline, [shuffled[i] for i in order])
        assert all(p.wait(120) == 0 for p in producers)
        # Every copy consumed and committed (so every result flushed) before counting.
        run.until(
            lambda: group_state(kafka_bootstrap, pipeline.group, pipeline.input).lag == 0,
            lambda: "input not consumed",
            timeout=120,
        )
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(count), timeout=60)
    finally:
        assert run.terminate() == 0
    by_key = results_by_key(got)
    assert sorted(by_key) == sorted(r["id"] for r in shuffled)
    assert len(got) == count  # one result per key: each key's two repeats were dropped
    stopped = run.events("replica_stopped")
    assert sum(e["records_in"] for e in stopped) == 3 * count
    assert sum(e["results"] for e in stopped) == count
    assert sum(e["repeats"] for e in stopped) == 2 * count
    assert run.events("partitions_lost") == []


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_poison_goes_to_dead_letters_and_every_good_neighbour_is_answered(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    encoder = make_encoder("single-object", "demo_input")
    good = demo_records(1000)
    raise_ = demo_records(5, start=0, seed=1)
    numpy_ = demo_records(5, start=0, seed=2)
    for i, r in enumerate(raise_):
        r["id"] = f"raise-{i}"
    for i, r in enumerate(numpy_):
        r["id"] = f"numpy-{i}"
    other = make_encoder("single-object", "result")
    poison = (
        [(f"corrupt-{i}".encode(), b"\xc3\x01garbage" + bytes([i])) for i in range(5)]
        + [
            (
                f"other-{i}".encode(),
                other.encode({"key": "k", "backend": "b", "backend_version": "1", "output": "{}"}),
            )
            for i in range(5)
        ]
        + [(f"null-{i}".encode(), None) for i in range(5)]
        + [(r["id"].encode(), encoder.encode(r)) for r in raise_ + numpy_]
    )
    mixed = [(r["id"].encode(), encoder.encode(r)) for r in good]
    for i, item in enumerate(poison):  # spread the poison among the good records
        mixed.insert(37 * i + 5, item)
    produce(kafka_bootstrap, pipeline.input, mixed)

    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Poisoned",
        "--guarantee",
        guarantee,
        "--codec",
        "single-object",
        "--max-batch-size",
        "64",
    )
    try:
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(1000), timeout=120)
        dead = collect(kafka_bootstrap, pipeline.dead_letters, distinct_keys(25), timeout=60)
    finally:
        assert run.terminate() == 0

    assert sorted(m.key().decode() for m in results) == sorted(r["id"] for r in good)
    assert len(results) == 1000
    assert len(dead) == 25
    original = dict(poison)
    stages = Counter()
    for message in dead:
        key = message.key()
        assert message.value() == original[key]  # the original bytes, untouched
        h = read_packflow_headers(message.headers())
        stages[h["stage"]] += 1
        assert h["source.topic"] == pipeline.input
        assert h["backend"] == "poisoned" and h["backend.version"] == "7"
        assert int(h["source.offset"]) >= 0 and h["source.partition"] in {"0", "1", "2"}
        kind = key.decode().split("-")[0]
        expected_stage = {
            "corrupt": "decode",
            "other": "decode",
            "null": "decode",
            "raise": "backend",
            "numpy": "validate",
        }[kind]
        assert h["stage"] == expected_stage, (key, h)
        if kind == "raise":
            assert h["error.type"] == "RuntimeError"
            assert "model blew up" in h["error.message"]
            assert h["attempts"] == "4"  # retried 3 times with backoff, as a batch and alone
        else:
            assert h["attempts"] == "1"  # decode and validation failures are not retried
        if kind == "other":
            assert "fingerprint" in h["error.message"]
        if kind == "numpy":
            assert h["error.type"] == "ValidationError"
    assert stages == {"decode": 15, "backend": 5, "validate": 5}


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_kill_9_of_one_of_three_replicas_loses_no_result(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    records = demo_records(60_000)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        LOGISTIC,
        "--replicas",
        "3",
        "--guarantee",
        guarantee,
        "--max-batch-size",
        "128",
        # The killed member's partitions move once its session times out: keep that short.
        "--consumer-kafka",
        "session.timeout.ms=6000",
        "--consumer-kafka",
        "heartbeat.interval.ms=1000",
    )
    try:
        run.wait_for("partitions_assigned", 3)
        produce_records(pipeline, records[:30_000])
        spawned = {e["replica"]: e["pid"] for e in run.wait_for("replica_spawned", 3)}
        time.sleep(1.0)
        os.kill(spawned[1], signal.SIGKILL)
        produce_records(pipeline, records[30_000:])
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(60_000), timeout=180)
        respawned = run.wait_for("replica_spawned", 4)
    finally:
        assert run.terminate() == 0
    assert sorted(results_by_key(got)) == sorted(r["id"] for r in records)  # zero missing
    assert respawned[-1]["replica"] == 1
    if guarantee == "exactly-once":
        assert len(got) == 60_000  # read_committed: each result exactly once
    print(f"kill -9, {guarantee}: {len(got) - 60_000} duplicate results")


def test_sigterm_exits_0_and_a_restart_resumes_without_gaps_or_repeats(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    records = demo_records(40_000)
    produce_records(pipeline, records)
    first = Run(
        pipeline,
        tmp_path / "first.log",
        "--backend",
        LOGISTIC,
        "--max-batch-size",
        "64",
        "--shutdown-timeout",
        "20",
    )
    first.wait_for("partitions_assigned")
    collect(kafka_bootstrap, pipeline.results, lambda got: len(got) >= 5000, timeout=60, settle=0)
    began = time.monotonic()
    assert first.terminate(timeout=30) == 0
    assert time.monotonic() - began < 20
    done_first = first.events("replica_stopped")[0]["results"]
    assert 0 < done_first < 40_000, done_first  # stopped mid-stream

    second = Run(pipeline, tmp_path / "second.log", "--backend", LOGISTIC)
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(40_000), timeout=120)
    finally:
        assert second.terminate() == 0
    assert sorted(results_by_key(got)) == sorted(r["id"] for r in records)
    assert len(got) == 40_000  # no result was produced twice


def test_a_model_slower_than_max_poll_interval_loses_no_partition(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    records = demo_records(500)
    produce_records(pipeline, records)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        f"{FAULTY}:Slow",
        "--config",
        "sleep_s=11",
        "--consumer-kafka",
        "session.timeout.ms=6000",
        "--consumer-kafka",
        "max.poll.interval.ms=7000",
        "--consumer-kafka",
        "heartbeat.interval.ms=1000",
    )
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(500), timeout=90)
    finally:
        assert run.terminate() == 0
    assert sorted(results_by_key(got)) == sorted(r["id"] for r in records)
    assert len(got) == 500
    # Kicked out of the group, the replica would have lost its partitions or been given them
    # again after a revoke: it kept them.
    assert run.events("partitions_lost") == []
    assert len(run.events("partitions_assigned")) == 1


def test_print_settings_shows_flags_over_environment_over_project(tmp_path: Path) -> None:
    (tmp_path / "packflow.yaml").write_text(
        "name: p\ninference_backend: packflow.examples.echo:Backend\nloader: module\n"
        "runtime:\n  group_id: from-yaml\n  max_batch_size: 64\n  max_wait_ms: 7\n"
    )
    env = dict(os.environ, PACKFLOW_MAX_BATCH_SIZE="99", PACKFLOW_KAFKA__FETCH_MAX_BYTES="1000")
    shown = subprocess.run(
        [PACKFLOW, "run", "--print-settings", "--max-wait-ms", "3", "--project", str(tmp_path)],
        capture_output=True,
        env=env,
        check=True,
        cwd=tmp_path,
    )
    settings = json.loads(shown.stdout)
    assert settings["group_id"] == "from-yaml"  # project
    assert settings["max_batch_size"] == 99  # environment over project
    assert settings["max_wait_ms"] == 3  # flag over project
    assert settings["kafka"] == {"fetch.max.bytes": "1000"}
    bad = subprocess.run(
        [PACKFLOW, "run", "--print-settings", "--max-batch-size", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("packflow: error: invalid settings: max_batch_size: ")


def test_produce_and_results_commands_round_trip_a_json_lines_file(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    records = demo_records(50, seed=3)
    sample = tmp_path / "records.jsonl"
    sample.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    flags = ["--bootstrap-servers", kafka_bootstrap]
    for _ in range(2):  # every record twice
        produced = subprocess.run(
            [PACKFLOW, "produce", "--input", str(sample), "--topic", pipeline.input, *flags],
            capture_output=True,
            text=True,
            check=True,
        )
        assert produced.stderr.strip().endswith(f"produced 50 records to {pipeline.input}")
    run = Run(pipeline, tmp_path / "run.log", "--backend", "packflow.examples.echo:Backend")
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(50), timeout=60)
    finally:
        assert run.terminate() == 0
    assert len(got) == 50  # the replica's repeat cache dropped the second copies
    assert run.events("replica_stopped")[0]["repeats"] == 50
    # A second group reads the input again (a replay): now the topic holds each result twice,
    # which only `--dedup` folds.
    replay = replace(pipeline, group=f"{pipeline.group}-replay")
    run = Run(replay, tmp_path / "replay.log", "--backend", "packflow.examples.echo:Backend")
    try:
        got = collect(kafka_bootstrap, pipeline.results, lambda got: len(got) >= 100)
    finally:
        assert run.terminate() == 0
    assert len(got) == 100

    def shown(*options: str) -> list[dict]:
        read = subprocess.run(
            [PACKFLOW, "results", *options, "--topic", pipeline.results, *flags],
            capture_output=True,
            check=True,
        )
        return [orjson.loads(line) for line in read.stdout.splitlines()]

    assert len(shown()) == 100
    lines = shown("--dedup")
    assert sorted(line["key"] for line in lines) == sorted(r["id"] for r in records)
    decoded = make_decoder("schemaless", "demo_input").decode_batch(
        [make_encoder("schemaless", "demo_input").encode(r) for r in records]
    )
    by_key = {line["key"]: line for line in lines}
    for record in decoded:
        assert by_key[record["id"]]["output"] == record  # echo answers the decoded record
        assert by_key[record["id"]]["backend"] == "echo"


def test_results_pass_on_trace_context_and_add_provenance_headers_only_when_asked(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    records = demo_records(40)
    encoder = make_encoder("schemaless", "demo_input")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n, r in enumerate(records):
        # Half the inputs carry a W3C trace context (and a header of their own).
        traced = [("traceparent", f"00-{n:032x}-{n:016x}-01".encode()), ("mine", b"x")]
        producer.produce(
            pipeline.input, key=r["id"], value=encoder.encode(r), headers=traced if n % 2 else None
        )
    assert producer.flush(30) == 0

    run = Run(pipeline, tmp_path / "run.log", "--backend", LOGISTIC)
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(40), timeout=60)
    finally:
        assert run.terminate() == 0
    assert len(got) == 40
    for message in got:
        n = int(message.key().decode().removeprefix("rec-"))
        expected = [("traceparent", f"00-{n:032x}-{n:016x}-01".encode())] if n % 2 else None
        assert message.headers() == expected

    # Asked for: the backend and the source coordinates too (a fresh group reads it all again).
    again = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    again = replace(again, input=pipeline.input)
    run = Run(again, tmp_path / "again.log", "--backend", LOGISTIC, "--result-headers")
    try:
        got = collect(kafka_bootstrap, again.results, distinct_keys(40), timeout=60)
    finally:
        assert run.terminate() == 0
    assert len(got) == 40
    for message in got:
        headers = read_packflow_headers(message.headers())
        assert headers["backend"] == "logistic" and headers["backend.version"] == "1"
        assert headers["source.topic"] == pipeline.input
        assert headers["source.partition"] in {"0", "1"} and int(headers["source.offset"]) >= 0
