"""The application client against the real broker: `Producer` and `Results` for every codec,
`predict` from many callers through two replicas, a dead letter as `PredictionFailed`, and
a timeout naming what is pending while the replicas are away."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.schema_registry import SchemaRegistryClient

from packflow.runtime.broker import LocalCluster
from packflow.runtime.client import (
    Client,
    DeadLetters,
    PredictionFailed,
    PredictionTimeout,
    Producer,
    Result,
    Results,
)
from packflow.runtime.codecs import make_decoder, make_encoder, make_result_encoder
from packflow.runtime.errors import EncodeError
from packflow.runtime.settings import RuntimeSettings
from packflow.runtime.topics import TopicSpec, create_topics
from tests.conftest import TopicFactory, cluster_settings
from tests.kafka_io import collect
from tests.runtime_io import Pipeline, Run, demo_records, make_pipeline

HERE = Path(__file__).parent
FAULTY = str(HERE / "faulty_backends.py")
ECHO = "packflow.examples.echo:Backend"


def settings_of(pipeline: Pipeline, **more: Any) -> RuntimeSettings:
    """The settings an application of this pipeline has (its replicas get the same flags)."""
    return RuntimeSettings(
        bootstrap_servers=pipeline.bootstrap,
        input_topic=pipeline.input,
        results_topic=pipeline.results,
        dead_letter_topic=pipeline.dead_letters,
        group_id=pipeline.group,
        **more,
    )


def decoded(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records as the replicas decode them (features are Avro floats), by id: what echo
    answers."""
    encoder = make_encoder("schemaless", "demo_input")
    values = make_decoder("schemaless", "demo_input").decode_batch(
        [encoder.encode(r) for r in records]
    )
    return {v["id"]: v for v in values}  # type: ignore[index,misc]


@pytest.mark.broker
@pytest.mark.parametrize("codec", ["schemaless", "single-object", "confluent"])
def test_ten_thousand_records_sent_with_producer_come_back_from_results_exactly(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, codec: str, request: Any
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    more: dict[str, Any] = {"codec": codec}
    flags = ["--codec", codec]
    if codec == "confluent":
        more["registry_url"] = request.getfixturevalue("schema_registry_url")
        flags += ["--registry-url", more["registry_url"]]
    settings = settings_of(pipeline, **more)
    records = demo_records(10_000, seed=5)
    bad = dict(records[4_000], x3="three")

    with Producer(settings) as producer:
        # One record that does not fit: the call raises at once and sends none of its records.
        with pytest.raises(EncodeError, match=r"DemoInput\.x3 is <three>"):
            producer.send_many([*records[:5_000], bad])
        assert producer.send_many(records[:9_000]) == [r["id"] for r in records[:9_000]]
        for record in records[9_000:]:
            assert producer.send(record) == record["id"]

    run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO, *flags, "--result-headers")
    try:
        seen: set[str] = set()
        for result in Results(settings, follow=True, dedup=True):
            seen.add(result.key)
            if len(seen) == len(records):
                break
    finally:
        assert run.terminate() == 0

    expected = decoded(records)
    got = list(Results(settings, dedup=True))
    assert sorted(r.key for r in got) == sorted(expected)
    for result in got:
        assert isinstance(result, Result)
        assert (result.backend, result.backend_version) == ("echo", "1")
        assert result.output == expected[result.key]
        assert result.source is not None and result.source.topic == pipeline.input
        assert result.topic == pipeline.results
    if codec == "confluent":
        registry = SchemaRegistryClient({"url": more["registry_url"]})
        registered = registry.get_latest_version(f"{pipeline.input}-value")
        assert json.loads(str(registered.schema.schema_str))["name"] == "DemoInput"
    # Nothing else was sent: the input holds the 10,000 records once each, never the bad one.
    inputs = collect(kafka_bootstrap, pipeline.input, lambda got: len(got) >= 10_000, settle=1)
    assert Counter(m.key() for m in inputs) == Counter(r["id"].encode() for r in records)


@pytest.mark.broker
def test_results_read_from_the_beginning_from_a_time_or_the_end_with_and_without_dedup(
    kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=2)
    settings = RuntimeSettings(bootstrap_servers=kafka_bootstrap, results_topic=topic)
    encoder = make_result_encoder("json")
    keys = [f"k{i}" for i in range(10)]
    values = encoder.encode_batch(keys, [{"n": i} for i in range(10)], "echo", "1")
    base = int(time.time() * 1000) - 60_000
    producer = KafkaProducer({"bootstrap.servers": kafka_bootstrap})
    # Every result twice, the second copies a minute later (by their timestamps).
    for copy in range(2):
        for key, value in zip(keys, values, strict=True):
            producer.produce(topic, value, key.encode(), timestamp=base + copy * 30_000)
    assert producer.flush(30) == 0

    every = list(Results(settings))
    assert Counter(r.key for r in every) == Counter({k: 2 for k in keys})
    once = list(Results(settings, dedup=True))
    assert sorted((r.key, r.output["n"]) for r in once) == [(k, int(k[1:])) for k in keys]
    assert all(r.source is None for r in once)  # no packflow.source.* headers
    since = datetime.fromtimestamp((base + 15_000) / 1000, UTC)
    later = list(Results(settings, start=since))
    assert sorted(r.key for r in later) == sorted(keys)
    assert {r.timestamp_ms for r in later} == {base + 30_000}
    assert list(Results(settings, start=datetime.now(UTC) + timedelta(hours=1))) == []
    assert list(Results(settings, start="end")) == []


def _predict_all(client: Client, records: list[dict[str, Any]], callers: int) -> list[float]:
    """Each caller predicts its share of `records` one at a time; latencies in ms."""
    expected = decoded(records)

    def one(record: dict[str, Any]) -> float:
        began = time.perf_counter()
        result = client.predict(record, timeout_s=60)
        took = (time.perf_counter() - began) * 1000
        # Each caller gets its own record's result.
        assert (result.key, result.output, result.backend) == (
            record["id"],
            expected[record["id"]],
            "echo",
        )
        return took

    def caller(share: list[dict[str, Any]]) -> list[float]:
        return [one(record) for record in share]

    with ThreadPoolExecutor(callers) as pool:
        shares = [records[i::callers] for i in range(callers)]
        return [ms for took in pool.map(caller, shares) for ms in took]


async def _apredict_all(
    settings: RuntimeSettings, records: list[dict[str, Any]], tasks: int
) -> list[float]:
    expected = decoded(records)

    async def caller(share: list[dict[str, Any]]) -> list[float]:
        took = []
        for record in share:
            began = time.perf_counter()
            result = await client.apredict(record, timeout_s=60)
            took.append((time.perf_counter() - began) * 1000)
            assert (result.key, result.output) == (record["id"], expected[record["id"]])
        return took

    async with Client(settings) as client:  # a client of its own, started off the loop
        shares = [records[i::tasks] for i in range(tasks)]
        got = await asyncio.gather(*(caller(share) for share in shares))
    return [ms for took in got for ms in took]


def _percentiles(label: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{label}: {len(ms)} predictions, p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms"


@pytest.mark.broker
def test_predict_from_fifty_callers_through_two_replicas_gives_each_its_own_result(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=6)
    run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO, "--replicas", "2")
    try:
        run.wait_for_replicas(2)
        with Client(settings_of(pipeline)) as client:
            threads = _predict_all(client, demo_records(1000, seed=1), callers=50)
            tasks = asyncio.run(
                _apredict_all(settings_of(pipeline), demo_records(500, start=1000, seed=2), 50)
            )
            # Many records in one call: one list, in order.
            batch = demo_records(100, start=2000, seed=3)
            answers = client.predict(batch, timeout_s=60)
            assert [a.key for a in answers] == [r["id"] for r in batch]  # type: ignore[union-attr]
            # A record answered already is not sent again (the replicas would drop it as a
            # repeat): its result is the one seen.
            again = client.predict(batch[0], timeout_s=10)
            assert again.key == batch[0]["id"] and again.offset == answers[0].offset  # type: ignore[union-attr]
    finally:
        assert run.terminate() == 0
    stopped = run.events("replica_stopped")
    assert len(stopped) == 2 and all(e["records_in"] > 0 for e in stopped)
    assert sum(e["records_in"] for e in stopped) == 1600
    print()
    print(_percentiles("predict, 50 threads", threads))
    print(_percentiles("apredict, 50 tasks", tasks))
    (tmp_path / "latency.json").write_bytes(orjson.dumps({"threads": threads, "tasks": tasks}))


@pytest.mark.broker
@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_record_the_backend_rejects_is_a_prediction_failed_with_stage_and_error(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, guarantee: str
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    good, raise_, numpy_ = demo_records(3, seed=4)
    raise_["id"], numpy_["id"] = "raise-1", "numpy-1"
    # Under exactly-once, results and dead letters are seen once their transaction commits.
    flags = ["--backend", f"{FAULTY}:Poisoned", "--guarantee", guarantee]
    run = Run(pipeline, tmp_path / "run.log", *flags)
    try:
        with Client(settings_of(pipeline)) as client:
            with pytest.raises(PredictionFailed) as failed:
                client.predict(raise_, timeout_s=60)
            assert (failed.value.key, failed.value.stage, failed.value.error_type) == (
                "raise-1",
                "backend",
                "RuntimeError",
            )
            assert failed.value.error_message == (
                "poisoned.execute() failed: RuntimeError: model blew up on a raise- record"
            )
            assert failed.value.dead_letter is not None
            assert failed.value.dead_letter.info["attempts"] == "4"  # retried, then alone

            answers = client.predict([good, numpy_], timeout_s=60, raise_failures=False)
            result, invalid = answers
            features = decoded([good])[good["id"]]
            assert isinstance(result, Result)
            assert result.output == {
                "id": good["id"],
                "total": sum(features[f"x{i}"] for i in range(16)),
            }
            assert isinstance(invalid, PredictionFailed)
            assert (invalid.key, invalid.stage, invalid.error_type) == (
                "numpy-1",
                "validate",
                "ValidationError",
            )
            # The whole call raises for its first failure by default.
            with pytest.raises(PredictionFailed, match="record 'numpy-1' failed at stage validate"):
                client.predict([numpy_, good], timeout_s=60)
            # A record without its id cannot be matched to a result: nothing is sent.
            with pytest.raises(EncodeError, match="DemoInput.id"):
                client.predict({k: v for k, v in good.items() if k != "id"})
    finally:
        assert run.terminate() == 0
    letters = list(DeadLetters(settings_of(pipeline), dedup=True))
    assert sorted((d.key_text, d.stage) for d in letters) == [
        ("numpy-1", "validate"),
        ("raise-1", "backend"),
    ]
    assert all(d.source.startswith(f"{pipeline.input}/") for d in letters)


@pytest.mark.broker
def test_predict_times_out_naming_the_pending_keys_while_the_replicas_are_away_then_succeeds(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    first, *records = demo_records(4, seed=6)
    expected = decoded([first, *records])
    with Client(settings_of(pipeline)) as client:
        run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO)
        try:
            assert client.predict(first, timeout_s=60).output == expected[first["id"]]
        finally:
            assert run.terminate() == 0

        with pytest.raises(PredictionTimeout) as timeout:
            client.predict(records, timeout_s=3)
        assert timeout.value.pending == tuple(r["id"] for r in records)
        assert timeout.value.timeout_s == 3

        run = Run(pipeline, tmp_path / "again.log", "--backend", ECHO)
        try:
            answers = client.predict(records, timeout_s=60)
        finally:
            assert run.terminate() == 0
    assert [(a.key, a.output) for a in answers] == [  # type: ignore[union-attr]
        (r["id"], expected[r["id"]]) for r in records
    ]


def readme_example() -> str:
    readme = (HERE.parents[1] / "README.md").read_text()
    section = readme.split("## From an application: the client", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def example(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(script)], env=os.environ | env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.broker
def test_the_readme_example_runs_as_written(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    env = {
        "PACKFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PACKFLOW_INPUT_TOPIC": pipeline.input,
        "PACKFLOW_RESULTS_TOPIC": pipeline.results,
        "PACKFLOW_DEAD_LETTER_TOPIC": pipeline.dead_letters,
    }
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO)
    try:
        run.wait_for_replicas(1)
        first = example(script, env)
        again = example(script, env)  # the results of the first run are in by now
    finally:
        assert run.terminate() == 0
    features = {f"x{i}": 0.5 for i in range(16)}
    asked = [ast.literal_eval(done.stdout.splitlines()[-1]) for done in (first, again)]
    for output in asked:
        assert output == {"id": output["id"], "timestamp": 1_700_000_000_000, **features}
        assert output["id"].startswith("ask-")
    shown = again.stdout.splitlines()[:-1]
    assert sorted(line.split()[0] for line in shown) == sorted(["rec-1", "rec-2", asked[0]["id"]])
    assert all(line.split()[1] == "1" for line in shown)  # echo's version


@pytest.mark.broker
def test_one_client_answers_on_across_a_broker_stopped_and_restarted(tmp_path: Path) -> None:
    cluster = LocalCluster(cluster_settings(tmp_path / "kafka"))
    cluster.start()
    try:
        stem = uuid.uuid4().hex[:8]
        pipeline = Pipeline(
            cluster.bootstrap, f"{stem}.in", f"{stem}.results", f"{stem}.dlq", f"g-{stem}"
        )
        create_topics(
            cluster.bootstrap,
            [
                TopicSpec(pipeline.input, 2, 1),
                TopicSpec(pipeline.results, 2, 1, {"cleanup.policy": "compact"}),
                TopicSpec(pipeline.dead_letters, 2, 1),
            ],
        )
        before, during, after = demo_records(3, seed=8)
        expected = decoded([before, during, after])
        run = Run(pipeline, tmp_path / "run.log", "--backend", ECHO)
        try:
            with Client(settings_of(pipeline)) as client:
                assert client.predict(before, timeout_s=60).output == expected[before["id"]]
                cluster.stop()
                with pytest.raises(PredictionTimeout) as timeout:
                    client.predict(during, timeout_s=3)  # held by the producer meanwhile
                assert timeout.value.pending == (during["id"],)
                cluster.start()
                got = client.predict([during, after], timeout_s=120)
        finally:
            assert run.terminate(timeout=90) == 0
    finally:
        cluster.stop(delete_data=True)
    assert [(r.key, r.output) for r in got] == [  # type: ignore[union-attr]
        (during["id"], expected[during["id"]]),
        (after["id"], expected[after["id"]]),
    ]
