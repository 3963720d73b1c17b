"""Counting what a fault did: every input key must end as a result or a dead letter.

Each scenario produces records with unique ids, runs Packflow through a fault, then reads the
results and dead-letter topics (read_committed) until every key is accounted for. The tally
(records, results, missing, duplicates, dead letters) is appended as a JSON line to
`PACKFLOW_FAULTS_REPORT` when set, for `tests/faults/report.py` and docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from tests.runtime_io import Pipeline

FULL = os.environ.get("PACKFLOW_FAULTS") == "full"
GUARANTEES = ["at-least-once", "exactly-once"]
# Short enough for `make test`; `make faults` runs the full form.
RECORDS = 100_000 if FULL else 20_000
KILLS = 10 if FULL else 2
FAST_SESSION = [
    "--kafka",
    "session.timeout.ms=6000",
    "--kafka",
    "heartbeat.interval.ms=1000",
    "--kafka",
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
    dead_letters: int

    def record(self) -> None:
        report = os.environ.get("PACKFLOW_FAULTS_REPORT")
        if report:
            # "tests/faults/test_faults.py::test_x[exactly-once] (call)": what reproduces it
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
            line = asdict(self) | {"full": FULL, "test": test}
            with Path(report).open("ab") as out:
                out.write(orjson.dumps(line) + b"\n")
        print(f"\n{self}")


def tally(
    scenario: str, guarantee: str, pipeline: Pipeline, ids: list[str], timeout: float = 180
) -> Tally:
    """Read results and dead letters until every id is answered (or `timeout`), then a few
    seconds more so that late repeats are counted too."""
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
    answered: set[str] = set()
    results: dict[str, int] = {}
    dead: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < (settle_until or deadline):
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is not None:
                    continue
                key = (message.key() or b"").decode()
                if message.topic() == pipeline.results:
                    results[key] = results.get(key, 0) + 1
                else:
                    dead.add(key)
                answered.add(key)
            if settle_until is None and wanted <= answered:
                settle_until = time.monotonic() + 3
    finally:
        consumer.close()
    return Tally(
        scenario=scenario,
        guarantee=guarantee,
        records=len(ids),
        results=sum(results.values()),
        missing=len(wanted - answered),
        duplicates=sum(n - 1 for n in results.values()),
        dead_letters=len(dead),
    )


def check(t: Tally) -> None:
    """The promise of each guarantee."""
    assert t.missing == 0, t
    if t.guarantee == "exactly-once":
        assert t.duplicates == 0, t
