"""A Schema Registry that is away: the partitions whose records need it wait (rewound, paused,
tried again after a growing backoff), the others flow, and /readyz says why
(consumer/registry_wait.py, and the replica's and Backpressure's use of it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from packflow import InferenceBackend
from packflow.runtime.backpressure import Backpressure
from packflow.runtime.codecs import make_decoder
from packflow.runtime.errors import DecodeError, RegistryError
from packflow.runtime.metrics import Probes
from packflow.runtime.registry_wait import RegistryWait
from packflow.runtime.retries import RetryPolicy
from tests.unit.test_replica_parts import A, B, FakeConsumer, data_path

POLICY = RetryPolicy(0, 0.5, 4.0, jitter=lambda: 1.0)  # no jitter: 0.5, 1, 2, 4, 4 s


def test_a_partition_waits_longer_at_each_try_until_it_decodes_again() -> None:
    now = [10.0]
    wait = RegistryWait(POLICY, clock=lambda: now[0])
    assert not wait.active and wait.reason() is None and wait.until(A) is None
    assert wait.away([A], "refused") == ([A], 0.5)  # A begins to wait
    assert wait.until(A) == 10.5 and wait.until(B) is None
    delays = [wait.away([A], "refused")[1] for _ in range(4)]
    assert delays == [1.0, 2.0, 4.0, 4.0]  # doubling, up to the ceiling
    assert wait.away([A, B], "timed out") == ([B], 4.0)  # only B is new
    assert wait.reason() == "waiting for the schema registry (partitions [0, 1]): timed out"
    now[0] = 20.0
    assert wait.back([A]) == {A: 10.0}  # waited since its first try
    assert wait.back([A]) == {}
    assert wait.away([A], "refused") == ([A], 0.5)  # a new outage starts from the bottom
    wait.forget([A, B])
    assert not wait.active


def test_a_waiting_partition_stays_paused_until_its_backoff_passes() -> None:
    consumer, now, until = FakeConsumer(), [100.0], {A: 101.0}
    flow = Backpressure(
        consumer, lambda tp: 0, limit=10, clock=lambda: now[0], held_until=until.get
    )
    assert flow.fetch_now([A, B])
    assert consumer.paused == [A] and flow.paused == {A}
    assert flow.fetch_now([A, B]) and consumer.paused == [A]  # paused once
    now[0] = 101.0
    assert flow.fetch_now([A, B])
    assert consumer.resumed == [A] and flow.paused == set()  # its queue is empty: resumed


class RegistryAway:
    """The schemaless decoder, except that a batch holding a record of partition 1 cannot be
    decoded while `away`: the registry would have to be asked for its writer schema."""

    codec = "schemaless"

    def __init__(self) -> None:
        self.inner = make_decoder("schemaless", "demo_input")
        self.away = True

    def decode_batch(self, values: Sequence[bytes | None]) -> list[dict[str, Any] | DecodeError]:
        decoded = self.inner.decode_batch(values)
        if self.away and any(isinstance(d, dict) and d["id"].startswith("1-") for d in decoded):
            raise RegistryError("schema registry at http://127.0.0.1:1 unreachable: refused")
        return decoded


class Echo(InferenceBackend):
    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": r["id"]} for r in inputs]


def test_records_that_need_the_registry_wait_and_the_other_partitions_are_answered() -> None:
    decoder = RegistryAway()
    path, producer, taken = data_path(Echo(), RetryPolicy(), decoder)
    with path.gate.batch():
        path._complete(taken, None)
    # A's records answered, B's neither answered nor dead-lettered nor committed past.
    assert [key for _, key, _, _ in producer.produced] == [b"0-0", b"0-1"]
    assert path.checkpoint.tracker.to_commit() == {A: 2}  # type: ignore[attr-defined]
    assert path.assignment._seeks == {B: 0}  # read again from its first record
    assert path.registry_wait.until(B) is not None and path.registry_wait.until(A) is None
    assert path.answered.claim(["1-0"]) == [True]  # never claimed
    path.answered.release(["1-0"])
    (line,) = path.log.named("registry_unavailable")
    assert line["partitions"] == [1] and line["retry_in_s"] == 0.5
    assert "unreachable" in line["error"]
    assert path.metrics.registry_waits._value.get() == 1

    # Tried again (re-read after the backoff): still away, one quieter line; then back.
    path.assignment.seek_rewound(path.consumer, path.log)
    path.assignment.accept({B: _b_records(taken)})
    with path.gate.batch():
        path._complete(path.assignment.take(10, 0.05), None)
    assert len(path.log.named("registry_unavailable")) == 1
    assert path.log.named("registry_still_unavailable")[0]["retry_in_s"] == 1.0
    decoder.away = False
    path.assignment.seek_rewound(path.consumer, path.log)
    path.assignment.accept({B: _b_records(taken)})
    with path.gate.batch():
        path._complete(path.assignment.take(10, 0.05), None)
    assert [key for _, key, _, _ in producer.produced] == [b"0-0", b"0-1", b"1-0", b"1-1"]
    assert path.log.named("registry_back")[0]["partitions"] == [1]
    assert not path.registry_wait.active
    assert path.log.named("dead_letter") == []


def _b_records(taken: Any) -> list[Any]:
    return [m for tp, run in taken.runs if tp == B for m in run]


def test_readyz_says_which_partitions_wait_for_the_registry() -> None:
    probes = Probes(30.0, lambda: 3, lambda: None)
    probes.initialised = True
    wait = RegistryWait(POLICY)
    probes.waiting = wait.reason
    assert probes.ready() == (True, "ok: 3 partitions\n")
    wait.away([B], "schema registry at http://127.0.0.1:1 unreachable")
    why = "waiting for the schema registry (partitions [1]): schema registry at http://127.0.0.1:1"
    assert probes.ready() == (False, f"{why} unreachable\n")
    assert probes.healthy()[0]  # alive: waiting is not a failure


def test_a_registry_url_is_named_without_its_credentials() -> None:
    from packflow.runtime.codecs import where_named

    assert where_named("https://svc:s3cret@registry:8081/apis") == "https://***@registry:8081/apis"
    assert where_named("http://registry:8081") == "http://registry:8081"
    decoder = make_decoder("confluent", "demo_input", registry_url="http://u:s3cret@127.0.0.1:1")
    assert "s3cret" not in decoder.where  # type: ignore[attr-defined]
