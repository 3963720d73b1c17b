"""A consumer group's state, as the broker sees it: members, who holds which partition of
the input topic, committed offsets, end offsets and lag (`packflow status`).

Read with the admin API only: describing a group does not join it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]  # exported, not in __all__

from .errors import TopicError
from .topics import admin_client


@dataclass(frozen=True)
class Member:
    client_id: str
    host: str
    member_id: str
    partitions: list[int]


@dataclass(frozen=True)
class PartitionState:
    partition: int
    member: str | None  # the client id of the member holding it, if any
    committed: int | None  # the group's committed offset, None when it has none
    start: int
    end: int

    @property
    def lag(self) -> int:
        """Records between the committed offset (else the start) and the end."""
        return max(0, self.end - (self.committed if self.committed is not None else self.start))


@dataclass(frozen=True)
class GroupState:
    group: str
    topic: str
    state: str
    members: list[Member]
    partitions: list[PartitionState]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for p, state in zip(out["partitions"], self.partitions, strict=True):
            p["lag"] = state.lag
        out["lag"] = self.lag
        return out


def group_state(
    bootstrap: str,
    group: str,
    topic: str,
    timeout_s: float = 10.0,
    config: Mapping[str, Any] | None = None,
) -> GroupState:
    """The group's members and its partitions' offsets, from the admin API only (`config`:
    more librdkafka settings, security, as for `admin_client`)."""
    admin = admin_client(bootstrap, config)
    try:
        metadata = admin.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise TopicError(f"no topic {topic} at {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        description = admin.describe_consumer_groups([group], request_timeout=timeout_s)[
            group
        ].result()
        committed_of = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, tps)], request_timeout=timeout_s
        )[group].result()
        ends = _offsets(admin, tps, OffsetSpec.latest(), timeout_s)  # type: ignore[no-untyped-call]
        starts = _offsets(admin, tps, OffsetSpec.earliest(), timeout_s)  # type: ignore[no-untyped-call]
    except KafkaException as exc:
        raise TopicError(f"group {group} at {bootstrap}: {exc.args[0].str()}") from exc
    members = []
    holder: dict[int, str] = {}
    for m in description.members:
        owned = sorted(
            tp.partition
            for tp in (m.assignment.topic_partitions if m.assignment else [])
            if tp.topic == topic
        )
        members.append(Member(m.client_id, m.host, m.member_id, owned))
        holder.update(dict.fromkeys(owned, m.client_id))
    committed = {tp.partition: tp.offset for tp in committed_of.topic_partitions}
    partitions = [
        PartitionState(
            tp.partition,
            holder.get(tp.partition),
            committed[tp.partition] if committed.get(tp.partition, -1) >= 0 else None,
            starts[tp.partition],
            ends[tp.partition],
        )
        for tp in tps
    ]
    state = str(description.state).rsplit(".", 1)[-1]
    return GroupState(group, topic, state, sorted(members, key=lambda m: m.client_id), partitions)


def _offsets(
    admin: Any, tps: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[int, int]:
    futures = admin.list_offsets({tp: spec for tp in tps}, request_timeout=timeout_s)
    return {tp.partition: int(f.result().offset) for tp, f in futures.items()}
