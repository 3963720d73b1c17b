"""The text-embedding backend's host path, the model call replaced by a constant: host
microseconds per record on the CPU, per stage, in process (no Kafka).

    .venv/bin/python -m bench.host_path [--batch-size 1024] [--rounds 15]

Each round runs one batch through the replica's data path (`consumer.pipeline.Pipeline`,
as `packflow run` wires it: schemaless Avro of `schemas/text_input.avsc` in, idempotency
keys on `id`, the repeat cache, JSON results out) over the real backend
(`packflow.examples.text_embedding`: its tokenizer, chunking, `transform_outputs`, output
validation), except that `execute` returns a constant batch x 384 float32 tensor of unit
rows, as the model's normalised embeddings are. What is left is what the host does per
record beside the GPU's work.

Reported per stage, us per record, the median and the minimum over rounds (the minimum
is the figure least disturbed by other work on a shared machine): the pipeline's `decode`
(Avro and keys), the backend's stages (`preprocess`, `transform_inputs` = tokenising and
padding, the stubbed `execute`, `transform_outputs`, `validate`), the pipeline's `encode`
(the JSON result envelopes), `other` (the rest: the repeat cache, the pipeline's
bookkeeping, freeing the batch), `total` (wall time of `Pipeline.__call__`) and `cpu` (the
process's CPU time over the same call, every thread: above `total` where the tokenizer runs
on several). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from packflow.examples.text_embedding import TextEmbeddingBackend
from packflow.examples.text_embedding.backend import Chunks
from packflow.runtime.codecs import make_decoder, make_encoder, make_result_encoder
from packflow.runtime.contracts import load_schema
from packflow.runtime.dedup import AnsweredKeys
from packflow.runtime.generate import synthetic_records
from packflow.runtime.pipeline import Pipeline

BACKEND_STAGES = ("preprocess", "transform_inputs", "execute", "transform_outputs", "validate")


@dataclass(frozen=True)
class Message:
    """What the pipeline reads of a consumed message."""

    _value: bytes
    _offset: int

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str:
        return "text-in"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> Any:
        return None


class HostOnly(TextEmbeddingBackend):
    """The text-embedding backend with its model call replaced by a constant tensor."""

    name = "text-embedding"

    def initialize(self) -> None:
        super().initialize()
        rows = torch.from_numpy(np.random.default_rng(0).normal(size=(4096, 384)))
        self.constant = torch.nn.functional.normalize(rows, dim=1).float()

    def execute(self, batch: Chunks) -> tuple[torch.Tensor, np.ndarray[Any, Any]]:
        n = len(batch.order)
        if n > len(self.constant):
            self.constant = self.constant.repeat(-(-n // len(self.constant)), 1)
        return self.constant[:n], batch.order  # a view: no work of torch's counted


def messages(count: int, seed: int) -> list[Message]:
    encoder = make_encoder("schemaless", "text_input")
    records = synthetic_records(load_schema("text_input"), count, seed=seed, id_prefix="text-")
    return [Message(encoder.encode(r), i) for i, r in enumerate(records)]


def measure(batch_size: int, rounds: int, seed: int = 1) -> dict[str, list[float]]:
    """us per record of each stage and of the whole, for each of `rounds` batches."""
    backend = HostOnly(device="cpu")
    pipeline = Pipeline(
        backend,
        make_decoder("schemaless", "text_input"),
        make_result_encoder("json"),
        AnsweredKeys(100_000, 3600.0),
        "id",
    )
    batch = messages(batch_size, seed)
    samples: dict[str, list[float]] = {}
    for round_ in range(rounds + 1):
        pipeline.answered = AnsweredKeys(100_000, 3600.0)  # every record new each round
        started, cpu = time.perf_counter(), time.process_time()
        outcome = pipeline(batch)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert len(outcome.results) == batch_size, outcome.dead[:1]
        if round_ == 0:
            continue  # warm-up
        stages = {"decode": outcome.seconds["decode"]}
        stages |= {s: outcome.backend_seconds.get(s, 0.0) for s in BACKEND_STAGES}
        stages["encode"] = outcome.seconds["encode"]
        stages["other"] = total - sum(stages.values())
        stages["total"] = total
        stages["cpu"] = cpu
        for stage, seconds in stages.items():
            samples.setdefault(stage, []).append(seconds * 1e6 / batch_size)
    return samples


def report(samples: dict[str, list[float]], batch_size: int) -> str:
    rounds = len(samples["total"])
    title = (
        f"text-embedding host path, model call stubbed, batch {batch_size}, "
        f"torch threads {torch.get_num_threads()}, {rounds} rounds"
    )
    lines = [title, f"{'us/record':<18} {'median':>8} {'min':>8}"]
    lines += [
        f"{stage:<18} {statistics.median(us):>8.2f} {min(us):>8.2f}"
        for stage, us in samples.items()
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print(report(measure(args.batch_size, args.rounds), args.batch_size))


if __name__ == "__main__":
    main()
