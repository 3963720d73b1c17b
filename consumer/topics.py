"""The pipeline's topics: input, results (log-compacted) and dead letters, via the admin API."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported from cimpl
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from .errors import TopicError

# Dead letters wait for a person to look at them: keep them 30 days.
DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    replication_factor: int


def pipeline_topics(
    input_topic: str,
    results_topic: str,
    dead_letter_topic: str,
    partitions: int,
    replication_factor: int,
) -> list[TopicSpec]:
    """The three topics of a pipeline. Results are keyed by idempotency key and compacted,
    so the compacted view holds one result per key."""
    return [
        TopicSpec(input_topic, partitions, replication_factor),
        TopicSpec(results_topic, partitions, replication_factor, {"cleanup.policy": "compact"}),
        TopicSpec(
            dead_letter_topic,
            partitions,
            replication_factor,
            {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
        ),
    ]


def admin_client(bootstrap: str, config: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client; `config`: more librdkafka settings (security), as the replica's."""
    # librdkafka would log each refused connection; failures surface as TopicError instead.
    quiet = logging.getLogger("packflow.kafka.admin")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return AdminClient({**(config or {}), "bootstrap.servers": bootstrap}, logger=quiet)


def message_limit(
    bootstrap: str, topics: Iterable[str], config: Mapping[str, Any], timeout: float = 5.0
) -> int | None:
    """The smallest `max.message.bytes` of these topics: the broker refuses a record batch
    larger than it, and only in a delivery report, long after produce() returned. None when
    it cannot be read (no DescribeConfigs right, the broker away): nothing then changes."""
    admin = admin_client(bootstrap, config)
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in dict.fromkeys(topics)]
    limits = []
    try:
        for future in admin.describe_configs(resources, request_timeout=timeout).values():
            entry = future.result(timeout=timeout).get("max.message.bytes")
            if entry is not None and entry.value:
                limits.append(int(entry.value))
    except (KafkaException, ValueError, concurrent.futures.TimeoutError):
        return None
    return min(limits, default=None)


def _metadata(admin: AdminClient, bootstrap: str, timeout: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot reach Kafka at {bootstrap}: {exc.args[0].str()}") from exc


def create_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    timeout: float = 30.0,
    config: Mapping[str, Any] | None = None,
) -> dict[str, bool]:
    """Create each topic; returns name -> True if created, False if it already existed.
    `config`: more librdkafka settings (security), as for `admin_client`."""
    admin = admin_client(bootstrap, config)
    _metadata(admin, bootstrap, timeout)
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in specs
    ]
    result: dict[str, bool] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            result[name] = True
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"cannot create topic {name}: {err.str()}") from exc
            result[name] = False
    return result


def describe_topics(
    bootstrap: str, timeout: float = 10.0, config: Mapping[str, Any] | None = None
) -> list[TopicInfo]:
    """The cluster's topics (internal ones left out), sorted by name; `config`: more
    librdkafka settings (security)."""
    metadata = _metadata(admin_client(bootstrap, config), bootstrap, timeout)
    return [
        TopicInfo(
            name,
            len(topic.partitions),
            max((len(p.replicas) for p in topic.partitions.values()), default=0),
        )
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    ]
