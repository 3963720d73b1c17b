from __future__ import annotations

import time

from packflow.runtime.dedup import AnsweredKeys
from packflow.runtime.headers import ResultHeaders, dead_letter_headers, read_packflow_headers
from packflow.runtime.keys import record_keys


def test_keys_use_the_id_field_else_coordinates() -> None:
    coords = [("in", 0, 5), ("in", 1, 7), ("in", 2, 9), ("in", 0, 6)]
    records = [{"id": "a"}, {"id": 42}, None, {"other": 1}]
    assert record_keys(records, coords, "id") == ["a", "42", "in/2/9", "in/0/6"]
    assert record_keys(records, coords, None) == ["in/0/5", "in/1/7", "in/2/9", "in/0/6"]


def test_answered_keys_drop_repeats_within_and_across_batches() -> None:
    answered = AnsweredKeys(max_keys=100, ttl_s=60)
    assert answered.claim(["a", "b", "a"]) == [True, True, False]
    assert answered.claim(["b", "c"]) == [False, True]
    assert answered.repeats == 2
    answered.release(["c"])
    assert answered.claim(["c"]) == [True]


def test_answered_keys_are_bounded_in_size_and_age() -> None:
    answered = AnsweredKeys(max_keys=3, ttl_s=0.05)
    answered.claim(["a", "b", "c", "d"])
    assert len(answered) == 3
    time.sleep(0.1)
    assert answered.claim(["b"]) == [True]  # expired, so it counts as new


def test_answered_keys_of_all_new_batches_are_evicted_oldest_first() -> None:
    answered = AnsweredKeys(max_keys=3, ttl_s=60)
    assert answered.claim(["a", "b"]) == [True, True]
    assert answered.claim(["c", "d"]) == [True, True]  # over the bound: "a" goes
    assert answered.claim(["b", "c", "d"]) == [False, False, False]
    assert answered.claim(["a"]) == [True]  # "b" goes
    assert answered.claim(["c", "b"]) == [False, True]
    assert answered.repeats == 4


def test_released_keys_do_not_pile_up_in_the_cache_however_many_are_claimed() -> None:
    # Every record dead-lettered (each claim released again) for a long while: what the
    # cache keeps stays within its bound, and released keys are claimed anew.
    answered = AnsweredKeys(max_keys=5, ttl_s=3600)
    for n in range(1000):
        keys = [f"k{n}-{i}" for i in range(3)]
        assert answered.claim(keys) == [True, True, True]
        answered.release(keys)
    assert len(answered) == 0
    assert sum(len(keys) for _, keys in answered._claims) <= 5
    assert answered.claim(["k999-0", "k999-0"]) == [True, False]


def test_dead_letter_headers_keep_the_original_ones_and_say_what_failed() -> None:
    original = [("traceparent", b"00-abc-def-01"), ("packflow.stage", b"backend")]
    headers = dead_letter_headers(
        original,
        stage="decode",
        error_type="DecodeError",
        message="corrupt",
        topic="in",
        partition=3,
        offset=17,
        backend="logistic",
        backend_version="1.0",
    )
    assert headers[0] == ("traceparent", b"00-abc-def-01")
    assert read_packflow_headers(headers) == {
        "stage": "decode",
        "error.type": "DecodeError",
        "error.message": "corrupt",
        "source.topic": "in",
        "source.partition": "3",
        "source.offset": "17",
        "backend": "logistic",
        "backend.version": "1.0",
        "attempts": "1",
    }


def test_result_headers_pass_the_trace_context_and_name_the_source() -> None:
    original = [("traceparent", b"00-abc-def-01"), ("other", b"x")]
    headers = ResultHeaders("echo", "2")(original, "in", 1, 9)
    assert headers[0] == ("traceparent", b"00-abc-def-01")
    assert ("other", b"x") not in headers
    assert read_packflow_headers(headers) == {
        "backend": "echo",
        "backend.version": "2",
        "source.topic": "in",
        "source.partition": "1",
        "source.offset": "9",
    }
