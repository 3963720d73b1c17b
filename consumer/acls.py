"""Least privilege: the ACLs one replica's principal needs, and their creation.

A replica reads the input topic in its consumer group (committing offsets there), writes the
results and dead-letter topics, and reads those two topics' `max.message.bytes` to fit its
batches (`topics.message_limit`). Exactly-once adds its transactional id,
`packflow-<group>-<instance>` (`settings.producer_config`): Write on the ids with the prefix
`packflow-<group>-`, one grant for every replica of the group. No IdempotentWrite on the
cluster: since Kafka 3.0 (KIP-679) Write on a topic is enough for an idempotent producer.
Describe is listed next to Read and Write although they imply it, so that the table says
what each command calls (`packflow status` describes the group and the input topic).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported from cimpl
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from .errors import AclError
from .settings import Guarantee
from .topics import admin_client

Resource = Literal["topic", "group", "transactional-id"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["Read", "Write", "Describe", "DescribeConfigs"]

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
}


@dataclass(frozen=True)
class Acl:
    """One ALLOW rule: `principal` may do `operation` on a resource, from any host."""

    principal: str
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = "literal"

    def binding(self) -> AclBinding:
        return AclBinding(
            _RESOURCE[self.resource],
            self.name,
            _PATTERN[self.pattern],
            self.principal,
            "*",
            _OPERATION[self.operation],
            AclPermissionType.ALLOW,
        )

    def __str__(self) -> str:
        where = f"{self.resource} {self.name}" + ("*" if self.pattern == "prefixed" else "")
        return f"ALLOW {self.principal} {self.operation} on {where}"


def principal_of(user: str) -> str:
    """`User:NAME` for a bare name; a principal with a type is kept as it is."""
    return user if ":" in user else f"User:{user}"


def transactional_id_prefix(group: str) -> str:
    """What every transactional id of the group's replicas begins with."""
    return f"packflow-{group}-"


def replica_acls(
    *,
    input_topic: str,
    results_topic: str,
    dead_letter_topic: str,
    group: str,
    guarantee: Guarantee,
    principal: str,
) -> list[Acl]:
    """The ACLs a replica of `group` needs, and no more. Pure."""
    who = principal_of(principal)
    acls = [
        Acl(who, "Read", "topic", input_topic),
        Acl(who, "Describe", "topic", input_topic),
        Acl(who, "Read", "group", group),
        Acl(who, "Describe", "group", group),
    ]
    for topic in dict.fromkeys((results_topic, dead_letter_topic)):
        acls += [
            Acl(who, "Write", "topic", topic),
            Acl(who, "Describe", "topic", topic),
            Acl(who, "DescribeConfigs", "topic", topic),
        ]
    if guarantee == "exactly-once":
        prefix = transactional_id_prefix(group)
        acls += [
            Acl(who, "Write", "transactional-id", prefix, "prefixed"),
            Acl(who, "Describe", "transactional-id", prefix, "prefixed"),
        ]
    return acls


def create_acls(
    bootstrap: str, acls: Iterable[Acl], config: Mapping[str, Any], timeout: float = 30.0
) -> None:
    """Create the ACLs (one that exists already is left as it is). Raises `AclError`
    naming each one refused."""
    admin = admin_client(bootstrap, config)
    wanted = {acl.binding(): acl for acl in acls}
    if not wanted:
        return
    try:
        futures = admin.create_acls(list(wanted), request_timeout=timeout)
    except KafkaException as exc:
        raise AclError(f"cannot create ACLs at {bootstrap}: {exc.args[0].str()}") from exc
    refused = []
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            refused.append(f"{wanted[binding]}: {error.str()}")
        except concurrent.futures.TimeoutError:
            refused.append(f"{wanted[binding]}: no answer within {timeout:g}s")
    if refused:
        raise AclError(f"ACLs not created at {bootstrap}: " + "; ".join(refused))
