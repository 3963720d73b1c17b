"""Operations against the real broker: metrics, health and readiness endpoints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from packflow.runtime.broker import free_port_block
from packflow.runtime.codecs import make_encoder
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
SLOW_START = f"{HERE / 'faulty_backends.py'}:SlowStart"
LOGISTIC = "packflow.examples.logistic:Backend"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def until(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_metrics_count_what_the_replica_did_and_readyz_flips_after_assignment(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    encoder = make_encoder("single-object", "demo_input")
    good = demo_records(2000)
    raising = demo_records(4, seed=1)
    for i, r in enumerate(raising):
        r["id"] = f"raise-{i}"
    corrupt = [(f"corrupt-{i}".encode(), b"\xc3\x01garbage" + bytes([i])) for i in range(6)]
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        SLOW_START,
        "--codec",
        "single-object",
        "--metrics-port",
        "0",
    )
    try:
        (serving,) = run.wait_for("metrics_serving")
        base = f"http://127.0.0.1:{serving['port']}"
        # Alive at once; not ready while initialize() runs, nor before partitions come.
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (503, "backend not initialised\n")
        run.wait_for("partitions_assigned")
        assert until(lambda: get(f"{base}/readyz")[0] == 200)
        assert get(f"{base}/readyz") == (200, "ok: 3 partitions\n")

        messages = [(r["id"].encode(), encoder.encode(r)) for r in good + raising] + corrupt
        produce(kafka_bootstrap, pipeline.input, messages)
        collect(kafka_bootstrap, pipeline.results, distinct_keys(2000), timeout=120)
        # The same 300 records again: answered already, dropped as duplicates.
        produce(kafka_bootstrap, pipeline.input, messages[:300])

        expected = {
            ("packflow_records_in_total", ()): 2310.0,
            ("packflow_results_total", ()): 2000.0,
            ("packflow_dead_letters_total", (("stage", "backend"),)): 4.0,
            ("packflow_dead_letters_total", (("stage", "decode"),)): 6.0,
            ("packflow_duplicates_dropped_total", ()): 300.0,
        }

        def settled() -> bool:
            samples = scrape(base)
            lags = [v for (name, _), v in samples.items() if name == "packflow_consumer_lag"]
            done = all(samples.get(k) == v for k, v in expected.items())
            return done and len(lags) == 3 and not any(lags)

        assert until(settled), scrape(base)
        samples = scrape(base)
        assert samples[("packflow_assigned_partitions", ())] == 3.0
        assert samples[("packflow_rebalances_total", (("kind", "assigned"),))] == 1.0
        batches = samples[("packflow_batches_total", ())]
        assert samples[("packflow_batch_size_count", ())] == batches
        assert samples[("packflow_batch_size_sum", ())] == 2310.0  # every record, once
        for stage in ("decode", "backend", "encode"):
            assert samples[("packflow_stage_seconds_count", (("stage", stage),))] == batches
        # The backend's own stages, for batches that reached it (not all-repeat ones).
        executed = samples[("packflow_stage_seconds_count", (("stage", "backend.execute"),))]
        assert 0 < executed < batches
        assert get(f"{base}/nothing")[0] == 404
    finally:
        assert run.terminate() == 0


FIXABLE = f"{HERE / 'faulty_backends.py'}:Fixable"


def packflow(*args: str) -> str:
    done = subprocess.run([PACKFLOW, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dead_letters_fixed_and_replayed_get_their_results_once(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    good = demo_records(300)
    bad = demo_records(5, seed=1)
    for i, r in enumerate(bad):
        r["id"] = f"raise-{i}"
    produce_records(pipeline, good + bad)

    broken = Run(pipeline, tmp_path / "broken.log", "--backend", FIXABLE)
    try:
        collect(kafka_bootstrap, pipeline.results, distinct_keys(300), timeout=90)
        letters = collect(kafka_bootstrap, pipeline.dead_letters, lambda got: len(got) >= 5)
    finally:
        assert broken.terminate() == 0
    assert sorted((m.key() or b"").decode() for m in letters) == [r["id"] for r in bad]

    where = ["--bootstrap-servers", kafka_bootstrap, "--topic", pipeline.dead_letters]
    listed = packflow("dlq", "list", *where)
    assert re.search(r"backend\s*│\s*RuntimeError\s*│\s*5\s*│", listed), listed
    first = f"{pipeline.dead_letters}/{letters[0].partition()}/{letters[0].offset()}"
    shown = json.loads(packflow("dlq", "show", first, *where))
    assert shown["key"] == (letters[0].key() or b"").decode()
    assert shown["headers"]["packflow.stage"] == "backend"
    assert shown["record"]["id"] == shown["key"]

    # The fix: the same backend, no longer broken. Replaying twice doubles nothing.
    fixed = Run(
        pipeline,
        tmp_path / "fixed.log",
        *("--backend", FIXABLE, "--config", "broken=false", "--metrics-port", "0"),
    )
    try:
        (serving,) = fixed.wait_for("metrics_serving")
        base = f"http://127.0.0.1:{serving['port']}"
        fixed.wait_for("partitions_assigned")
        replay = ["dlq", "replay", "--stage", "backend", "--input-topic", pipeline.input, *where]
        assert packflow(*replay, "--dry-run").endswith(f"would replay 5 to {pipeline.input}\n")
        assert packflow(*replay) == f"replayed 5 to {pipeline.input}\n"
        collect(kafka_bootstrap, pipeline.results, distinct_keys(305), timeout=90)
        assert packflow(*replay) == f"replayed 5 to {pipeline.input}\n"
        dropped = ("packflow_duplicates_dropped_total", ())
        assert until(lambda: scrape(base).get(dropped) == 5.0), scrape(base)
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(305), timeout=30)
    finally:
        assert fixed.terminate() == 0
    assert len(got) == 305  # 300, then the 5 replayed, each once
    by_key = results_by_key(got)
    for r in bad:
        (result,) = by_key[r["id"]]
        assert abs(result["output"]["total"] - sum(r[f"x{i}"] for i in range(16))) < 1e-3
    # Nothing new was dead-lettered.
    assert len(collect(kafka_bootstrap, pipeline.dead_letters, lambda got: len(got) >= 5)) == 5


def test_packflow_status_shows_the_real_groups_members_offsets_and_lag(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    where = [
        "--bootstrap-servers", kafka_bootstrap,
        "--group-id", pipeline.group, "--input-topic", pipeline.input,
    ]  # fmt: skip
    run = Run(pipeline, tmp_path / "run.log", "--backend", LOGISTIC, "--replicas", "2")
    try:
        run.wait_for_replicas(2)
        produce_records(pipeline, demo_records(1000))
        collect(kafka_bootstrap, pipeline.results, distinct_keys(1000), timeout=90)

        def caught_up() -> dict | None:
            state = json.loads(packflow("status", "--json", *where))
            held = [p for m in state["members"] for p in m["partitions"]]
            return state if state["lag"] == 0 and sorted(held) == [0, 1, 2, 3] else None

        state = until(caught_up)
        assert state, packflow("status", "--json", *where)
        table = packflow("status", *where)
        # The truth, by other means: the replicas' own logs (before they leave) and a
        # consumer's committed().
        holds: dict[int, set[int]] = {0: set(), 1: set()}
        for event in run.events("partitions_assigned"):  # one per rebalance
            replica = holds[event["replica"]]
            replica |= set(event["partitions"])
            replica -= set(event["lost"])
            assert sorted(replica) == event["held"]
    finally:
        assert run.terminate() == 0
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": pipeline.group})
    try:
        tps = [TopicPartition(pipeline.input, p) for p in range(4)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        ends = {p: consumer.get_watermark_offsets(tps[p], timeout=10)[1] for p in range(4)}
    finally:
        consumer.close()

    assert state["state"] == "STABLE"
    assert len(state["members"]) == 2
    for member in state["members"]:
        replica = int(member["client_id"].rsplit("-", 1)[1])  # packflow-<host>-<pid>-<index>
        assert set(member["partitions"]) == holds[replica]
    for p in state["partitions"]:
        assert p["committed"] == committed[p["partition"]] == ends[p["partition"]] == p["end"]
        assert p["lag"] == 0
        assert p["member"] in {m["client_id"] for m in state["members"]}
    assert sum(p["committed"] for p in state["partitions"]) == 1000
    assert f"group {pipeline.group} on {pipeline.input}: STABLE, 2 members, lag 0" in table
    for member in state["members"]:
        assert member["client_id"] in table


def test_logs_are_json_lines_bound_to_the_replica_one_line_per_rebalance(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    log = tmp_path / "run.log"
    # No PACKFLOW_LOG_FORMAT: stderr is a file, so JSON is the default.
    env = {k: v for k, v in os.environ.items() if k != "PACKFLOW_LOG_FORMAT"}
    with log.open("wb") as err:
        first = subprocess.Popen(
            [PACKFLOW, "run", *pipeline.flags(), "--backend", SLOW_START],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        try:
            lines = lambda: log.read_bytes().splitlines()
            assert until(lambda: b"partitions_assigned" in log.read_bytes())
            second = Run(pipeline, tmp_path / "second.log", "--backend", SLOW_START)
            try:
                second.wait_for_replicas(1)  # holding partitions (a first round may give none)
                assert until(lambda: log.read_bytes().count(b"partitions_assigned") == 2)
            finally:
                assert second.terminate() == 0
            assert until(lambda: log.read_bytes().count(b"partitions_assigned") == 3)
        finally:
            first.terminate()
            assert first.wait(60) == 0
    events = [json.loads(line) for line in lines()]  # every line is JSON
    assert all(e["replica"] == 0 and e["pid"] == first.pid for e in events)
    # The backend's own events carry the replica too.
    assert any(
        e.get("backend") == "slow-start" and e["event"] == "backend_initialized" for e in events
    )
    rebalances = [e for e in events if e["event"] == "partitions_assigned"]
    assert rebalances[0]["held"] == [0, 1, 2, 3]
    given_up = set(rebalances[1]["lost"])
    assert given_up and rebalances[1]["partitions"] == []  # the newcomer took some
    assert set(rebalances[2]["partitions"]) == given_up and rebalances[2]["lost"] == []
    assert rebalances[2]["held"] == [0, 1, 2, 3]


@pytest.mark.parametrize("exporter", [None, "none"], ids=["plain", "otel"])
def test_trace_context_reaches_results_and_dead_letters(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, exporter: str | None
) -> None:
    """Without OpenTelemetry configured the input's traceparent passes unchanged; with it, a
    `packflow process` span sits between: same trace, Packflow's span id."""
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    encoder = make_encoder("single-object", "demo_input")
    good = demo_records(20)
    trace_ids = {r["id"]: f"{i + 1:032x}" for i, r in enumerate(good)}
    parent_span = "00f067aa0ba902b7"

    def traced(trace_id: str) -> list[tuple[str, bytes]]:
        return [
            ("traceparent", f"00-{trace_id}-{parent_span}-01".encode()),
            ("tracestate", b"vendor=1"),
        ]

    messages = [(r["id"].encode(), encoder.encode(r), traced(trace_ids[r["id"]])) for r in good]
    messages.append((b"corrupt", b"\xc3\x01garbage", traced("f" * 32)))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, value, headers in messages:
        producer.produce(pipeline.input, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0

    env = {"OTEL_TRACES_EXPORTER": exporter} if exporter else {}
    run = Run(
        pipeline, tmp_path / "run.log", "--backend", LOGISTIC, "--codec", "single-object", env=env
    )
    try:
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(20), timeout=60)
        letters = collect(kafka_bootstrap, pipeline.dead_letters, lambda got: len(got) >= 1)
    finally:
        assert run.terminate() == 0
    assert len(results) == 20 and len(letters) == 1
    expected = {(m.key() or b"").decode(): trace_ids.get((m.key() or b"").decode(), "f" * 32)
                for m in results + letters}  # fmt: skip
    for m in results + letters:
        headers = dict(m.headers() or [])
        version, trace_id, span_id, flags = headers["traceparent"].decode().split("-")
        assert (version, trace_id, flags) == ("00", expected[(m.key() or b"").decode()], "01")
        if exporter:
            assert span_id != parent_span  # Packflow's own span, a child of the input's
        else:
            assert span_id == parent_span
        assert headers["tracestate"] == b"vendor=1"


def test_each_replica_serves_its_own_metrics_on_port_plus_index(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=4)
    base = free_port_block(2)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        *("--backend", LOGISTIC, "--replicas", "2", "--metrics-port", str(base)),
    )
    try:
        run.wait_for_replicas(2)
        served = {e["replica"]: e["port"] for e in run.events("metrics_serving")}
        assert served == {0: base, 1: base + 1}
        produce_records(pipeline, demo_records(3000))
        collect(kafka_bootstrap, pipeline.results, distinct_keys(3000), timeout=90)

        def per_replica(name: str) -> list[float]:
            return [
                scrape(f"http://127.0.0.1:{port}").get((name, ()), 0.0) for port in served.values()
            ]

        # Each counts its own records; together, every record once.
        assert until(lambda: sum(per_replica("packflow_results_total")) == 3000)
        counts = per_replica("packflow_records_in_total")
        assert sum(counts) == 3000 and all(counts)
        held = per_replica("packflow_assigned_partitions")
        assert sorted(held) == [2.0, 2.0]
    finally:
        assert run.terminate() == 0
