"""A transactional call that never returns (librdkafka#5456, #5511) ends the replica's process:
bounded in the Transaction, a fatal state in the DataPath, a prompt non-zero exit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from packflow.runtime import transactions
from packflow.runtime.checkpoint import ExactlyOnce
from packflow.runtime.quarantine import Quarantine
from packflow.runtime.registry_wait import RegistryWait
from packflow.runtime.replica import DataPath, RunState
from packflow.runtime.retries import RetryPolicy
from packflow.runtime.transactions import StuckError, Transaction
from tests.unit.test_replica_parts import A, FakeConsumer, FakeProducer, Log


@dataclass
class BlockingProducer(FakeProducer):
    """commit_transaction blocks until released: a call stuck inside librdkafka."""

    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)

    def commit_transaction(self, timeout: float) -> None:
        self.entered.set()
        self.release.wait()
        self.calls.append("commit_transaction")


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(transactions, "_STUCK_GRACE_S", 0.2)
    return 0.2


def test_a_commit_stuck_past_its_timeout_raises_stuck_and_never_touches_the_producer_again(
    short_grace: float,
) -> None:
    producer = BlockingProducer()
    transaction = Transaction(producer, FakeConsumer(), interval_s=0)  # type: ignore[arg-type]
    transaction.begin()
    transaction.read([(A, 0, 4)], ["a"])
    began = time.monotonic()
    try:
        with pytest.raises(StuckError, match="did not return within"):
            transaction.commit(timeout_s=0.3)
        waited = time.monotonic() - began
        assert producer.entered.is_set()
        assert 0.3 + short_grace <= waited < 5  # bounded: its timeout plus the grace
        # No abort, no retry: a producer stuck in a call is not called again.
        assert producer.calls == ["begin_transaction"]
    finally:
        producer.release.set()


def test_a_stuck_commit_makes_the_replica_fail_so_it_exits_non_zero(short_grace: float) -> None:
    producer = BlockingProducer()
    consumer = FakeConsumer()
    checkpoint = ExactlyOnce(Transaction(producer, consumer, 0), timeout_s=0.3)  # type: ignore[arg-type]
    log, state = Log(), RunState()
    unused: Any = None
    path = DataPath(
        settings=unused,
        index=0,
        log=log,
        state=state,
        metrics=unused,
        probes=unused,
        consumer=unused,
        producer=unused,
        pipeline=unused,
        assignment=unused,
        backpressure=unused,
        checkpoint=checkpoint,
        publisher=unused,
        answered=unused,
        quarantine=Quarantine(3, "test-0", None),
        registry_wait=RegistryWait(RetryPolicy()),
        reach=unused,
    )
    checkpoint.begin()
    checkpoint.done([(A, 0, 0)], ["a"])
    try:
        path._settle(None, True, periodic=True)
    finally:
        producer.release.set()
    assert not state.running
    assert state.fatal is not None and "did not return within" in state.fatal
    (failed,) = log.named("transaction_failed")
    assert failed["kind"] == "StuckError"


def test_exit_replica_ends_the_process_at_once_even_with_a_thread_stuck_in_a_call() -> None:
    # A non-daemon thread blocked for ever (as the stuck librdkafka call's) would keep an
    # ordinary interpreter exit waiting; the replica's exit does not wait for it.
    code = (
        "import threading\n"
        "from packflow.runtime.supervisor import exit_replica\n"
        "threading.Thread(target=threading.Event().wait).start()\n"
        "exit_replica(1)\n"
    )
    ended = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert ended.returncode == 1
