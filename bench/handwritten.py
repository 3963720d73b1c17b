"""The speed limit: a hand-written confluent-kafka loop doing Packflow's job with nothing else.

    .venv/bin/python -m bench.handwritten --bootstrap-servers HOST:PORT --input-topic IN \
        --results-topic OUT --group-id G [--batch-size 1000]

Per batch: consume up to `--batch-size` records, decode each with fastavro, one numpy call
(the logistic backend's weights and formula), produce one JSON result per record keyed by its
id (the same bytes Packflow produces), flush, commit the batch's offsets synchronously. No
dead letters, no validation, no dedup, no per-partition ordering guarantees beyond Kafka's.
SIGTERM/SIGINT stop it after the batch in hand.
"""

from __future__ import annotations

import argparse
import json
import signal
from io import BytesIO
from pathlib import Path

import fastavro
import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaException, Producer

ROOT = Path(__file__).resolve().parent.parent
FEATURES = [f"x{i}" for i in range(16)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--results-topic", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-wait-ms", type=int, default=50, help="how long a batch may wait")
    args = parser.parse_args()

    schema = fastavro.parse_schema(json.loads((ROOT / "schemas/demo_input.avsc").read_text()))
    params = json.loads((ROOT / "backends/logistic/weights.json").read_text())
    weights, bias = np.asarray(params["weights"], dtype=np.float64), float(params["bias"])

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    # The same producer settings as a Packflow replica's, so both pay the same broker work.
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    consumer.subscribe([args.input_topic])
    reader, dumps, sort = fastavro.schemaless_reader, orjson.dumps, orjson.OPT_SORT_KEYS
    topic = args.results_topic
    while not stopping:
        messages = consumer.consume(args.batch_size, timeout=args.max_wait_ms / 1000)
        messages = [m for m in messages if m.error() is None]
        if not messages:
            continue
        records = [reader(BytesIO(m.value()), schema, None) for m in messages]
        x = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
        scores = 0.5 * (1.0 + np.tanh(0.5 * (np.einsum("ij,j->i", x, weights) + bias)))
        labels = (scores >= 0.5).astype(np.int64).tolist()
        for record, score, label in zip(records, scores.tolist(), labels, strict=True):
            key = record["id"]
            value = dumps(
                {
                    "key": key,
                    "backend": "logistic",
                    "backend_version": "1",
                    "output": {"score": score, "label": label},
                },
                option=sort,
            )
            while True:
                try:
                    producer.produce(topic, value=value, key=key.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            # A rebalance is under way (the group's generation moved on): the partitions'
            # next owner re-reads from the last commit, as at-least-once allows.
            pass
    producer.flush()
    consumer.close()


if __name__ == "__main__":
    main()
