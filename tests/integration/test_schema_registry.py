"""The confluent codec against a real Schema Registry (Apicurio Registry, started by the
session fixture `schema_registry_url` of `tests/schema_registry.py`)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from packflow.runtime.client import Producer as ClientProducer
from packflow.runtime.codecs import ConfluentEncoder, Encoder, make_decoder, make_encoder
from packflow.runtime.contracts import schema_path
from packflow.runtime.errors import DecodeError
from packflow.runtime.settings import RuntimeSettings
from tests.basic_auth_proxy import BasicAuthProxy
from tests.conftest import TopicFactory
from tests.kafka_io import collect, consume_exactly, distinct_keys, produce
from tests.runtime_io import PACKFLOW, Run, endpoint, make_pipeline, results_by_key
from tests.tcp_proxy import TcpProxy


def demo_record(i: int) -> dict[str, Any]:
    # Multiples of 1/8 are exact in float32, so decoded features equal the originals.
    return {
        "id": f"rec-{i}",
        "timestamp": 1_700_000_000_000 + i,
        **{f"x{j}": (i * 16 + j) / 8 - 20.0 for j in range(16)},
    }


def demo_v2(directory: Path) -> str:
    schema = json.loads(schema_path("demo_input").read_text())
    schema["fields"].append({"name": "source", "type": "string", "default": "sensor"})
    path = directory / "demo_v2.avsc"
    path.write_text(json.dumps(schema))
    return str(path)


def schema_id_of(encoder: Encoder) -> int:
    assert isinstance(encoder, ConfluentEncoder)
    return encoder.schema_id


@pytest.mark.broker
def test_confluent_records_round_trip_through_the_registry_and_the_broker(
    schema_registry_url: str, kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=2)
    records = [demo_record(i) for i in range(300)]
    encoder = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject=f"{topic}-value"
    )
    produce(kafka_bootstrap, topic, [(r["id"].encode(), encoder.encode(r)) for r in records])

    messages = consume_exactly(kafka_bootstrap, topic, len(records))

    # A client of its own, as a consumer in another process would have: nothing cached.
    client = SchemaRegistryClient({"url": schema_registry_url})
    decoder = make_decoder("confluent", "demo_input", registry_client=client)
    decoded = decoder.decode_batch([m.value() for m in messages])
    assert sorted(decoded, key=lambda r: r["id"] if isinstance(r, dict) else "") == sorted(
        records, key=lambda r: r["id"]
    )
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id_of(encoder)
    assert json.loads(str(registered.schema.schema_str))["name"] == "DemoInput"


def test_a_new_reader_fills_defaults_for_records_of_an_old_registered_writer(
    schema_registry_url: str, tmp_path: Path
) -> None:
    subject = f"evolution-{tmp_path.name}-value"
    v2 = demo_v2(tmp_path)
    old = make_encoder("confluent", "demo_input", registry_url=schema_registry_url, subject=subject)
    new = make_encoder("confluent", v2, registry_url=schema_registry_url, subject=subject)
    values = [old.encode(demo_record(1)), new.encode({**demo_record(2), "source": "camera"})]
    assert schema_id_of(old) != schema_id_of(new)

    client = SchemaRegistryClient({"url": schema_registry_url})
    new_reader = make_decoder("confluent", v2, registry_client=client)
    old_reader = make_decoder("confluent", "demo_input", registry_client=client)
    assert new_reader.decode_batch(values) == [
        {**demo_record(1), "source": "sensor"},
        {**demo_record(2), "source": "camera"},
    ]
    assert old_reader.decode_batch(values) == [demo_record(1), demo_record(2)]


def test_an_id_the_registry_does_not_know_is_a_decode_error_in_its_slot(
    schema_registry_url: str,
) -> None:
    encoder = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject="unknown-id-value"
    )
    good = encoder.encode(demo_record(3))
    unknown = b"\x00" + (987654).to_bytes(4, "big") + good[5:]
    client = SchemaRegistryClient({"url": schema_registry_url})
    decoded = make_decoder(
        "confluent", "demo_input", registry_client=client, registry_url=schema_registry_url
    ).decode_batch([good, unknown, good])
    assert decoded[0] == decoded[2] == demo_record(3)
    error = decoded[1]
    assert isinstance(error, DecodeError)
    assert (error.reason, str(error)) == (
        "unknown-schema",
        f"unknown schema id 987654: not in the schema registry at {schema_registry_url}",
    )


# -- interplay with confluent-kafka's own serializer and deserializer -------------------------

LOCATION = {
    "type": "record",
    "name": "Location",
    "namespace": "packflow.test",
    "fields": [{"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}],
}
READING_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "string"},
    {"name": "value", "type": "float"},
]


def placed(i: int) -> dict[str, Any]:
    # Quarters are exact in float32, so decoded values equal the originals.
    return {"id": f"r{i}", "value": i / 4, "where": {"lat": 52.5 + i, "lon": -i / 8}}


@pytest.mark.broker
def test_confluent_kafkas_serializer_with_a_schema_reference_reaches_our_decoder(
    schema_registry_url: str, kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaReference
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = make_topic(partitions=1)
    producer_client = SchemaRegistryClient({"url": schema_registry_url})
    # The Location is its own subject; the input schema names it and references that subject.
    location_subject = f"{topic}-location"
    producer_client.register_schema(location_subject, Schema(json.dumps(LOCATION), "AVRO"))
    location_version = producer_client.get_latest_version(location_subject).version
    referencing = {
        "type": "record",
        "name": "Placed",
        "namespace": "packflow.test",
        "fields": [*READING_FIELDS, {"name": "where", "type": "packflow.test.Location"}],
    }
    reference = SchemaReference("packflow.test.Location", location_subject, location_version)
    serializer = AvroSerializer(
        producer_client, Schema(json.dumps(referencing), "AVRO", [reference])
    )
    records = [placed(i) for i in range(40)]
    context = SerializationContext(topic, MessageField.VALUE)
    values = [serializer(r, context) for r in records]
    produce(kafka_bootstrap, topic, [(r["id"].encode(), v) for r, v in zip(records, values)])

    messages = consume_exactly(kafka_bootstrap, topic, len(records))

    registered = producer_client.get_latest_version(f"{topic}-value")
    assert [(r.name, r.subject, r.version) for r in registered.schema.references] == [
        ("packflow.test.Location", location_subject, location_version)
    ]
    # V0 framing: magic byte 0, then the id the registry gave the referencing schema.
    assert {m.value()[:5] for m in messages} == {b"\x00" + registered.schema_id.to_bytes(4, "big")}
    # The reader is self-contained (the Location inline), as a consumer's .avsc file is.
    reader = tmp_path / "placed.avsc"
    fields = [*READING_FIELDS, {"name": "where", "type": LOCATION}]
    reader.write_text(json.dumps({**referencing, "fields": fields}))
    client = SchemaRegistryClient({"url": schema_registry_url})
    decoder = make_decoder("confluent", str(reader), registry_client=client)
    assert decoder.decode_batch([m.value() for m in messages]) == records


@pytest.mark.broker
def test_our_confluent_encoder_reaches_confluent_kafkas_deserializer(
    schema_registry_url: str, kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    topic = make_topic(partitions=1)
    records = [demo_record(i) for i in range(40)]
    encoder = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject=f"{topic}-value"
    )
    produce(kafka_bootstrap, topic, [(r["id"].encode(), encoder.encode(r)) for r in records])

    messages = consume_exactly(kafka_bootstrap, topic, len(records))

    client = SchemaRegistryClient({"url": schema_registry_url})
    header = b"\x00" + client.get_latest_version(f"{topic}-value").schema_id.to_bytes(4, "big")
    assert {m.value()[:5] for m in messages} == {header}
    deserializer = AvroDeserializer(client, schema_path("demo_input").read_text())
    assert [deserializer(m.value(), None) for m in messages] == records
    # A second producer in this process shares the registry client, and gets the same id.
    again = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject=f"{topic}-value"
    )
    assert again.encode(records[0]) == encoder.encode(records[0])


def _produce_to(
    bootstrap: str, topic: str, partition: int, values: list[tuple[bytes, bytes]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, value=value, key=key, partition=partition)
    assert producer.flush(30) == 0


@pytest.mark.broker
@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_registry_away_mid_stream_is_waited_for_and_every_record_answered_once_back(
    schema_registry_url: str,
    kafka_bootstrap: str,
    make_topic: TopicFactory,
    tmp_path: Path,
    guarantee: str,
) -> None:
    """The replica reaches the registry through a proxy that the test takes away: records
    with a schema id it has cached go on; records with a new id (an evolved writer) wait,
    their partition paused, /readyz saying why; all are answered once the registry is back,
    nothing dead-lettered and the replica never restarted."""
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    subject = f"{pipeline.input}-value"
    v1 = make_encoder("confluent", "demo_input", registry_url=schema_registry_url, subject=subject)
    parts = urllib.parse.urlsplit(schema_registry_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 80))
    proxy.start()
    proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    before = [demo_record(i) for i in range(600)]
    # Every partition's first records use v1, so the replica caches its id before the outage.
    for p in range(3):
        _produce_to(kafka_bootstrap, pipeline.input, p,
                    [(r["id"].encode(), v1.encode(r)) for r in before[p::3]])  # fmt: skip
    run = Run(
        pipeline,
        tmp_path / "run.log",
        "--backend",
        "packflow.examples.logistic:Backend",
        "--codec",
        "confluent",
        "--registry-url",
        proxied,
        "--metrics-port",
        "0",
        "--registry-backoff-ms",
        "200",
        "--registry-backoff-max-ms",
        "1000",
        "--guarantee",
        guarantee,
    )
    try:
        (serving,) = run.wait_for("metrics_serving")
        port = serving["port"]
        first = collect(kafka_bootstrap, pipeline.results, distinct_keys(600), timeout=90)
        assert len(results_by_key(first)) == 600
        proxy.stop()  # the registry is away
        # An evolved writer registers a new schema id (directly): partition 0 gets its records.
        v2 = make_encoder("confluent", demo_v2(tmp_path), registry_url=schema_registry_url,
                          subject=subject)  # fmt: skip
        evolved = [demo_record(i) | {"id": f"v2-{i}", "source": "lab"} for i in range(300)]
        _produce_to(kafka_bootstrap, pipeline.input, 0,
                    [(r["id"].encode(), v2.encode(r)) for r in evolved])  # fmt: skip
        # Partitions 1 and 2 get more v1 records: they flow while partition 0 waits.
        more = [demo_record(i) for i in range(600, 900)]
        for p in (1, 2):
            _produce_to(kafka_bootstrap, pipeline.input, p,
                        [(r["id"].encode(), v1.encode(r)) for r in more[p - 1 :: 2]])  # fmt: skip
        (away,) = run.wait_for("registry_unavailable", timeout=60)
        assert away["partitions"] == [0]
        during = collect(kafka_bootstrap, pipeline.results, distinct_keys(900), timeout=60)
        answered = set(results_by_key(during))
        assert len(answered) == 900
        assert {r["id"] for r in more} <= answered  # the other partitions flowed
        assert not {r["id"] for r in evolved} & answered  # nothing past the record waiting
        status, why = endpoint(port, "/readyz")
        assert status == 503 and why.startswith("waiting for the schema registry (partitions [0])")
        time.sleep(3)  # several tries while away: still one line, no restart
        assert len(run.events("registry_unavailable")) == 1
        proxy.start()  # back
        results = collect(kafka_bootstrap, pipeline.results, distinct_keys(1200), timeout=60)
        run.wait_for("registry_back", timeout=30)
        assert endpoint(port, "/readyz")[0] == 200
    finally:
        run.terminate()
        proxy.stop()
    by_key = results_by_key(results)
    assert sorted(by_key) == sorted(r["id"] for r in before + more + evolved)
    assert all(len(v) == 1 for v in by_key.values())
    assert collect(kafka_bootstrap, pipeline.dead_letters, lambda got: False, 3, settle=0) == []
    assert run.events("replica_exited") == [] and len(run.events("replica_started")) == 1


@pytest.mark.broker
def test_registry_credentials_in_registry_config_reach_a_registry_behind_basic_auth(
    schema_registry_url: str, kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path
) -> None:
    """The registry asks for basic auth (a proxy in front of the real one): an application's
    Producer and a replica given `registry_config` credentials (flag or variable, not in the
    URL) register, fetch and answer every record; the secret is printed nowhere."""
    secret = "s3cret-planted-4f1c"
    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=2)
    records = [demo_record(i) for i in range(300)]
    with BasicAuthProxy(schema_registry_url, "app", secret) as proxy:
        base = RuntimeSettings(
            bootstrap_servers=kafka_bootstrap,
            input_topic=pipeline.input,
            codec="confluent",
            registry_url=proxy.url,
        )
        # Without the credentials: refused at the registration, nothing sent.
        with (
            pytest.raises(Exception, match="401|Unauthorized") as refused,
            ClientProducer(base) as producer,
        ):
            producer.send(records[0])
        assert secret not in str(refused.value)
        authed = base.model_copy(
            update={"registry_config": {"basic.auth.user.info": f"app:{secret}"}}
        )
        with ClientProducer(authed) as producer:
            producer.send_many(records)
        run = Run(
            pipeline,
            tmp_path / "run.log",
            "--backend",
            "packflow.examples.logistic:Backend",
            "--codec",
            "confluent",
            "--registry-url",
            proxy.url,
            env={"PACKFLOW_REGISTRY_CONFIG__BASIC_AUTH_USER_INFO": f"app:{secret}"},
        )
        try:
            got = collect(kafka_bootstrap, pipeline.results, distinct_keys(300), timeout=90)
        finally:
            assert run.terminate() == 0
        printed = subprocess.run(
            [PACKFLOW, "run", *pipeline.flags(), "--registry-url", proxy.url,
             "--print-settings", "--registry-config", f"basic.auth.user.info=app:{secret}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    assert sorted(results_by_key(got)) == sorted(r["id"] for r in records)
    assert len(got) == 300
    assert proxy.refused >= 1  # the registry really asked
    log = (tmp_path / "run.log").read_text()
    assert secret not in log
    assert secret not in printed.stdout + printed.stderr
    assert '"basic.auth.user.info": "***"' in printed.stdout
