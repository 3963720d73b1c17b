"""The pipeline's topics on the real broker: partitions, replication, compaction, errors."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import ConfigResource

from packflow.runtime.errors import TopicError
from packflow.runtime.topics import (
    DEAD_LETTER_RETENTION_MS,
    admin_client,
    create_topics,
    describe_topics,
    pipeline_topics,
)
from tests.conftest import free_port_block


def test_pipeline_topics_have_their_partitions_and_policies(kafka_bootstrap: str) -> None:
    stem = uuid.uuid4().hex[:8]
    names = [f"{stem}.in", f"{stem}.results", f"{stem}.dlq"]
    specs = pipeline_topics(*names, partitions=4, replication_factor=1)

    assert create_topics(kafka_bootstrap, specs) == dict.fromkeys(names, True)
    assert create_topics(kafka_bootstrap, specs) == dict.fromkeys(names, False)

    infos = {t.name: t for t in describe_topics(kafka_bootstrap) if t.name in names}
    assert {n: (i.partitions, i.replication_factor) for n, i in infos.items()} == dict.fromkeys(
        names, (4, 1)
    )
    admin = admin_client(kafka_bootstrap)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    configs = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    assert configs[names[0]]["cleanup.policy"].value == "delete"
    assert configs[names[1]]["cleanup.policy"].value == "compact"
    assert configs[names[2]]["retention.ms"].value == str(DEAD_LETTER_RETENTION_MS)
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def test_replication_beyond_the_brokers_is_a_clear_error(kafka_bootstrap: str) -> None:
    name = f"too-replicated-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TopicError, match=f"cannot create topic {name}: .*replication factor of 3"):
        create_topics(kafka_bootstrap, pipeline_topics(name, name + ".r", name + ".d", 1, 3))


def test_unreachable_broker_is_a_clear_error() -> None:
    closed = f"127.0.0.1:{free_port_block(1)}"
    with pytest.raises(TopicError, match=f"cannot reach Kafka at {closed}"):
        create_topics(closed, pipeline_topics("a", "b", "c", 1, 1), timeout=2)
