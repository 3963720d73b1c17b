"""The runtime's settings: one frozen pydantic-settings model.

Precedence, highest first: flags (keyword arguments), `PACKFLOW_*` environment variables, the
`runtime:` section of the project's `packflow.yaml`, defaults. `PACKFLOW_KAFKA__<NAME>`
variables (and the `kafka:` mapping) pass straight to librdkafka, `_` becoming `.`:
`PACKFLOW_KAFKA__SESSION_TIMEOUT_MS=10000` is `session.timeout.ms=10000`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from packflow.errors import PackflowError
from packflow.project import PROJECT_FILE, locate_project

Guarantee = Literal["at-least-once", "exactly-once"]
Codec = Literal["schemaless", "single-object", "confluent"]
ResultFormat = Literal["json", "avro"]


class SettingsError(PackflowError):
    """Settings that cannot be used; the message names each bad field."""


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PACKFLOW_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    # What to run
    project: Path | None = Field(None, description="project dir or .zip with packflow.yaml")
    backend: str | None = Field(None, description="module:Class or file.py:Class")
    backend_config: dict[str, Any] = Field(default_factory=dict)

    # Where
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "packflow"
    group_instance_id: str | None = Field(None, description="static membership id")
    input_topic: str = "packflow.input"
    results_topic: str = "packflow.results"
    dead_letter_topic: str = "packflow.dead-letter"

    # How
    max_batch_size: int = Field(256, ge=1, le=100_000)
    max_wait_ms: int = Field(50, ge=0, le=60_000)
    guarantee: Guarantee = "at-least-once"
    id_field: str | None = "id"
    codec: Codec = "schemaless"
    input_schema: str = Field("demo_input", description="reader schema: shipped name or .avsc")
    writer_schema: str | None = Field(None, description="schemaless writer, if not the reader")
    known_schemas: list[str] = Field(default_factory=list)
    registry_url: str | None = None
    result_format: ResultFormat = "json"
    result_headers: bool = Field(
        False, description="packflow.backend* and packflow.source.* headers on every result"
    )
    overlap: bool = Field(
        False, description="prepare the next batch on the host while the current one executes"
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics /healthz /readyz; replica i on +i"
    )
    metrics_host: str = "0.0.0.0"
    stuck_after_s: float = Field(60.0, gt=0, description="/healthz fails after this long")
    dedup_max_keys: int = Field(100_000, ge=1)
    dedup_ttl_s: float = Field(3600.0, gt=0)
    max_queued_per_partition: int = Field(4096, ge=1)
    commit_interval_ms: int = Field(500, ge=10)
    replicas: int = Field(1, ge=1, le=64)
    shutdown_timeout_s: float = Field(30.0, gt=0)
    kafka: dict[str, str] = Field(default_factory=dict, description="librdkafka passthrough")

    @field_validator("kafka", mode="before")
    @classmethod
    def _librdkafka_names(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {str(k).lower().replace("_", "."): str(v) for k, v in value.items()}

    @field_validator("id_field", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value in ("", "none", "null") else value

    @model_validator(mode="after")
    def _registry_for_confluent(self) -> RuntimeSettings:
        if self.codec == "confluent" and not self.registry_url:
            raise ValueError("codec 'confluent' needs registry_url (a Schema Registry URL)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, ProjectRuntimeSource(settings_cls))

    def project_dir(self) -> Path | None:
        return find_project(self.project)


def find_project(given: str | Path | None) -> Path | None:
    """The project directory: the given one (directory, packflow.yaml or .zip), else the
    working directory when it holds a `packflow.yaml`, else None."""
    if given is not None:
        return locate_project(given)
    return Path.cwd() if (Path.cwd() / PROJECT_FILE).is_file() else None


class ProjectRuntimeSource(PydanticBaseSettingsSource):
    """The `runtime:` section of the project's `packflow.yaml` (lowest before defaults)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole section at once

    def __call__(self) -> dict[str, Any]:
        project = find_project(self.current_state.get("project"))
        if project is None:
            return {}
        path = project / PROJECT_FILE
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path} is not valid YAML: {exc}") from None
        section = document.get("runtime") if isinstance(document, dict) else None
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise SettingsError(f"{path}: runtime: must be a mapping of settings")
        return dict(section)


def load_settings(**flags: Any) -> RuntimeSettings:
    """Settings from flags (None means not given) over the environment over the project.

    Raises `SettingsError` naming every invalid field."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return RuntimeSettings(**given)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] not in ("missing", "extra_forbidden") else "")
            for e in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


def consumer_config(settings: RuntimeSettings, replica: int = 0) -> dict[str, Any]:
    """librdkafka consumer settings of one replica."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        # Offsets are committed by the replica itself, only once results are acknowledged.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    if settings.group_instance_id:
        config["group.instance.id"] = f"{settings.group_instance_id}-{replica}"
    return config | _passthrough(settings, _PRODUCER_ONLY)


def replica_instance(settings: RuntimeSettings, index: int, owner_pid: int) -> str:
    """A replica's identity: its static membership id if configured, else host, the pid of
    the process that owns it (the supervisor, which outlives its restarts) and its index."""
    if settings.group_instance_id:
        return f"{settings.group_instance_id}-{index}"
    return f"{socket.gethostname()}-{owner_pid}-{index}"


def producer_config(settings: RuntimeSettings, instance: str = "0") -> dict[str, Any]:
    """librdkafka producer settings of one replica. Exactly-once gives the replica the
    transactional id `packflow-<group>-<instance>`: unique among live replicas, and the same
    for a restarted replica (see `replica_instance`), so that it fences the one it replaces
    and aborts its open transaction at once."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    if settings.guarantee == "exactly-once":
        config["transactional.id"] = f"packflow-{settings.group_id}-{instance}"
    return config | _passthrough(settings, _CONSUMER_ONLY)


# Passthrough keys go to both clients except where librdkafka would warn about a property of
# the other kind of client.
_CONSUMER_ONLY = (
    "group.",
    "session.",
    "max.poll.",
    "heartbeat.",
    "auto.",
    "fetch.",
    "partition.assignment",
    "isolation.level",
    "enable.auto",
    "enable.partition",
)
_PRODUCER_ONLY = (
    "acks",
    "linger.",
    "batch.",
    "compression.",
    "enable.idempotence",
    "transactional.",
    "transaction.",
    "delivery.",
    "message.timeout",
    "retries",
    "queue.buffering.",
)


def _passthrough(settings: RuntimeSettings, exclude: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in settings.kafka.items() if not k.startswith(exclude)}
