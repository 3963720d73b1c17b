"""Counting what a fault did: every input key must end as a result or a dead letter.

Each scenario produces records with unique ids, runs Packflow through a fault, then reads the
results and dead-letter topics (read_committed) until every key is accounted for. The tally
(records, results, missing, duplicates, dead letters, and per key: repeated dead letters,
keys answered both ways, keys no input had) is appended as a JSON line to
`PACKFLOW_FAULTS_REPORT` when set, for `tests/faults/report.py` and docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError

from tests.runtime_io import Pipeline

FULL = os.environ.get("PACKFLOW_FAULTS") == "full"
GUARANTEES = ["at-least-once", "exactly-once"]
# Short enough for `make test`; `make faults` runs the full form.
RECORDS = 100_000 if FULL else 20_000
KILLS = 10 if FULL else 2
FAST_SESSION = [
    "--consumer-kafka",
    "session.timeout.ms=6000",
    "--consumer-kafka",
    "heartbeat.interval.ms=1000",
    "--consumer-kafka",
    "max.poll.interval.ms=20000",
]


@dataclass(frozen=True)
class Tally:
    scenario: str
    guarantee: str
    records: int
    results: int  # result messages, repeats included
    missing: int  # inputs with neither a result nor a dead letter
    duplicates: int  # result messages beyond one per key
    dead_letters: int  # dead-letter messages, repeats included
    # Per key, across both topics (read_committed):
    dead_repeats: int = 0  # dead-letter messages beyond one per key
    answered_twice: int = 0  # keys with both a result and a dead letter
    unexpected: int = 0  # answered keys that no input had
    # keys dead-lettered (kept out of the report line)
    dead_keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    result_keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def record(self) -> None:
        report = os.environ.get("PACKFLOW_FAULTS_REPORT")
        if report:
            # "tests/faults/test_faults.py::test_x[exactly-once] (call)": what reproduces it
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
            line = asdict(self) | {"full": FULL, "test": test}
            del line["dead_keys"], line["result_keys"]
            with Path(report).open("ab") as out:
                out.write(orjson.dumps(line) + b"\n")
        print(f"\n{self}")


def tally(
    scenario: str, guarantee: str, pipeline: Pipeline, ids: list[str], timeout: float = 180
) -> Tally:
    """Read results and dead letters until every id is answered (or `timeout`), then a few
    seconds more so that late repeats are counted too. Counts per key, across both topics."""
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.bootstrap,
            "group.id": f"tally-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([pipeline.results, pipeline.dead_letters])
    wanted = set(ids)
    assert len(wanted) == len(ids), "input ids must be unique"
    results: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < (settle_until or deadline):
            for message in consumer.consume(1000, timeout=0.5):
                error = message.error()
                assert error is None or error.code() == KafkaError._PARTITION_EOF, error
                if error is not None:
                    continue
                key = (message.key() or b"").decode()
                (results if message.topic() == pipeline.results else dead)[key] += 1
            if settle_until is None and wanted <= results.keys() | dead.keys():
                settle_until = time.monotonic() + 3
    finally:
        consumer.close()
    answered = results.keys() | dead.keys()
    return Tally(
        scenario=scenario,
        guarantee=guarantee,
        records=len(ids),
        results=sum(results.values()),
        missing=len(wanted - answered),
        duplicates=sum(n - 1 for n in results.values()),
        dead_letters=sum(dead.values()),
        dead_repeats=sum(n - 1 for n in dead.values()),
        answered_twice=len(results.keys() & dead.keys()),
        unexpected=len(answered - wanted),
        dead_keys=frozenset(dead),
        result_keys=frozenset(results),
    )


def check(t: Tally, poison: Collection[str] = (), clean: bool = False) -> None:
    """The promise of each guarantee, key by key: every input answered (exactly once under
    exactly-once, as a result or as a dead letter, never both), nothing answered that was not
    input, and no dead letters but for the `poison` keys, each of which is one (and never a
    result). `clean`: a fault that at-least-once promises to survive without repeats too."""
    assert t.missing == 0, t
    assert t.unexpected == 0, t
    if t.guarantee == "exactly-once" or clean:
        assert t.duplicates == 0, t
    if t.guarantee == "exactly-once":
        assert t.dead_repeats == 0, t
        assert t.answered_twice == 0, t
        assert t.results + t.dead_letters == t.records, t
    poisoned = set(poison)
    assert poisoned <= t.dead_keys, sorted(poisoned - t.dead_keys)[:5]
    assert not poisoned & t.result_keys, sorted(poisoned & t.result_keys)[:5]
    if not poisoned:
        assert t.dead_letters == 0, t
