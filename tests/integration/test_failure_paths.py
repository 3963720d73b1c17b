"""The failure paths docs/RELIABILITY.md relies on, each caused for real against the real
broker: `/healthz` when the fetch loop is stuck or the replica failed, a delivery failure
(at-least-once), an abortable transaction, a fenced producer."""

from __future__ import annotations

import re
from pathlib import Path

from confluent_kafka import Producer

from packflow.runtime.status import group_state
from packflow.runtime.topics import TopicSpec, admin_client, create_topics
from tests.conftest import TopicFactory
from tests.kafka_io import collect, distinct_keys
from tests.runtime_io import Pipeline, Run, demo_records, endpoint, make_pipeline, produce_records

SLEEPY = f"{Path(__file__).with_name('faulty_backends.py')}:Sleepy"


def until_answer(run: Run, port: int, path: str, code: int, timeout: float = 60) -> str:
    """Poll `path` until it answers `code`; returns the body."""
    seen: list[tuple[int, str]] = []

    def answered() -> bool:
        seen.append(endpoint(port, path))
        return seen[-1][0] == code

    run.until(answered, lambda: f"{path} never answered {code} (last: {seen[-1:]})", timeout)
    return seen[-1][1]


def metrics_port(run: Run) -> int:
    return int(run.wait_for("metrics_serving")[0]["port"])


def named(prefix: str, count: int, seed: int = 0) -> list[dict]:
    records = demo_records(count, seed=seed)
    for i, r in enumerate(records):
        r["id"] = f"{prefix}-{i}"
    return records


def ids(records: list[dict]) -> list[str]:
    return sorted(r["id"] for r in records)


def keys(messages: list) -> list[str]:
    return sorted(m.key().decode() for m in messages)


def committed(pipeline: Pipeline) -> dict[int, int | None]:
    state = group_state(pipeline.bootstrap, pipeline.group, pipeline.input)
    return {p.partition: p.committed for p in state.partitions}


def test_healthz_is_503_while_the_fetch_loop_is_stuck_and_200_again_once_it_turns(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    flags = ["--backend", SLEEPY, "--metrics-port", "0", "--stuck-after-s", "2"]
    first = Run(pipeline, tmp_path / "first.log", *flags, "--config", "sleep_s=20")
    second = None
    try:
        port = metrics_port(first)
        first.wait_for_replicas(1)
        records = named("slow", 1) + named("rec", 50)
        produce_records(pipeline, records)
        first.wait_for("sleeping")
        # A slow model alone leaves the fetch loop turning: healthy.
        assert endpoint(port, "/healthz") == (200, "ok\n")
        # A member joins: the first's revoke waits for the batch in hand, inside the poll, so
        # its fetch loop stops turning for the rest of that batch.
        second = Run(pipeline, tmp_path / "second.log", *flags)
        body = until_answer(first, port, "/healthz", 503)
        assert re.fullmatch(r"fetch loop stuck for \d+s\n", body), body
        assert until_answer(first, port, "/healthz", 200) == "ok\n"  # the batch ended
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(51), timeout=60)
    finally:
        assert first.terminate() == 0
        if second is not None:
            assert second.terminate() == 0
    assert keys(got) == ids(records)
    assert len(got) == 51
    assert first.events("partitions_lost") == []  # revoked, not lost: nothing repeated


def test_a_delivery_failure_stops_the_replica_uncommitted_and_a_restart_answers_the_rest(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=1)
    # Commits 10 s apart: the worker goes from the last `after-` batch straight into the slow
    # one, rather than waiting for a commit whose flush meets the failure first (then the
    # replica would end before /healthz is read).
    flags = ["--backend", SLEEPY, "--max-batch-size", "20", "--metrics-port", "0"]
    flags += ["--commit-interval-ms", "10000"]
    # librdkafka gives up on a result after 3 s: a delivery failure for good.
    timeout = ["--producer-kafka", "message.timeout.ms=3000"]
    run = Run(pipeline, tmp_path / "run.log", *flags, *timeout, "--config", "sleep_s=20")
    try:
        port = metrics_port(run)
        before = named("before", 100)
        produce_records(pipeline, before)
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(100), timeout=60)
        run.until(lambda: committed(pipeline) == {0: 100}, lambda: "100 never committed", 30)
        # The results topic goes away (the broker creates no topic on its own).
        admin = admin_client(kafka_bootstrap)
        admin.delete_topics([pipeline.results])[pipeline.results].result(timeout=30)
        # The last record keeps the worker busy while the replica fails, so /healthz is seen.
        after = named("after", 100) + named("slow", 1)
        produce_records(pipeline, after)
        body = until_answer(run, port, "/healthz", 503)
        assert body.startswith("failed: producer: "), body
        code = run.proc.wait(90)
    finally:
        run.terminate()
    assert keys(got) == ids(before)
    assert code == 1
    (failed,) = run.events("delivery_failed")[:1]
    assert failed["topic"] == pipeline.results and failed["key"].startswith("after-")
    (stopped,) = run.events("replica_stopped")
    assert stopped["fatal"].startswith("producer: ")
    assert committed(pipeline) == {0: 100}  # nothing committed past the failed result

    create_topics(
        kafka_bootstrap, [TopicSpec(pipeline.results, 1, 1, {"cleanup.policy": "compact"})]
    )
    again = Run(pipeline, tmp_path / "again.log", *flags)
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(101), timeout=60)
    finally:
        assert again.terminate() == 0
    assert keys(got) == ids(after)  # from the committed offset: each once, none lost
    assert len(got) == 101


def test_an_abortable_transaction_is_aborted_rewound_its_keys_forgotten_and_answered_once(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=1)
    # No results topic (the broker creates none): each result times out after 2 s, which
    # makes the open transaction abortable; its commit aborts it, the replica re-reads.
    admin = admin_client(kafka_bootstrap)
    admin.delete_topics([pipeline.results])[pipeline.results].result(timeout=30)
    records = named("rec", 20)
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        SLEEPY,
        "--guarantee",
        "exactly-once",
        "--producer-kafka",
        "message.timeout.ms=2000",
        "--metrics-port",
        "0",
    )
    try:
        port = metrics_port(run)
        run.wait_for_replicas(1)
        produce_records(pipeline, records)
        run.wait_for("transaction_aborted")
        spec = TopicSpec(pipeline.results, 1, 1, {"cleanup.policy": "compact"})
        create_topics(kafka_bootstrap, [spec])  # the next attempt goes through
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(20), timeout=90)
        _, metrics = endpoint(port, "/metrics")
    finally:
        assert run.terminate() == 0
    assert keys(got) == ids(records)
    assert len(got) == 20  # read_committed: the aborted transactions' results never show
    aborted = run.events("transaction_aborted")
    assert all(e["partitions"] == [0] for e in aborted), aborted
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("packflow_transaction_aborts_total")
    ]
    assert counted == [f"packflow_transaction_aborts_total {float(len(aborted))}"], counted
    (stopped,) = run.events("replica_stopped")
    assert stopped["aborts"] == len(aborted)
    # Rewound: every attempt read the records again (20 per abort, 20 for the commit); the
    # keys were forgotten, so the copies read again were answered, never dropped as repeats.
    assert stopped["records_in"] == 20 * (len(aborted) + 1), stopped
    assert stopped["repeats"] == 0
    # Counted once delivered: the aborted attempts' results all timed out.
    assert stopped["results"] == 20


def test_a_fenced_producer_ends_the_replica_and_its_successor_answers_the_rest_once(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    # Static membership: the replica's transactional.id is packflow-<group>-<instance>-<index>.
    flags = ["--backend", SLEEPY, "--guarantee", "exactly-once", "--group-instance-id", "fenced"]
    first = Run(pipeline, tmp_path / "first.log", *flags)
    before, after = named("before", 100), named("after", 100)
    try:
        first.wait_for_replicas(1)
        produce_records(pipeline, before)
        collect(kafka_bootstrap, pipeline.results, distinct_keys(100), timeout=60, settle=0)
        # A second instance with the same transactional.id: the broker fences the first.
        newer = Producer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "transactional.id": f"packflow-{pipeline.group}-fenced-0",
            }
        )
        newer.init_transactions(30)
        produce_records(pipeline, after)
        code = first.proc.wait(60)
    finally:
        first.terminate()
    assert code == 1
    (failed,) = first.events("transaction_failed")
    assert failed["kind"] == "FencedError", failed
    (stopped,) = first.events("replica_stopped")
    assert stopped["fatal"] == failed["error"]

    successor = Run(pipeline, tmp_path / "successor.log", *flags)  # fences `newer` in turn
    try:
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(200), timeout=90)
    finally:
        assert successor.terminate() == 0
    assert keys(got) == ids(before + after)
    assert len(got) == 200  # read_committed: the fenced transaction's results never show
