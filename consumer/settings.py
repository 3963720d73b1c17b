"""The runtime's settings: one frozen pydantic-settings model.

Precedence, highest first: flags (keyword arguments), `PACKFLOW_*` environment variables, the
`runtime:` section of the project's `packflow.yaml`, defaults. Every field `x_y` is the flag
`--x-y` and the variable `PACKFLOW_X_Y`.

librdkafka properties pass straight through, to the clients their setting names: `kafka` to
both the consumer and the producer, `consumer_kafka` to the consumer only, `producer_kafka`
to the producer only (later ones win). `PACKFLOW_CONSUMER_KAFKA__SESSION_TIMEOUT_MS=10000` is
`session.timeout.ms=10000` for the consumer (`_` becomes `.`). Nothing is routed by guessing
from a property's name.
"""

from __future__ import annotations

import difflib
import os
import socket
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pydantic
import pydantic_settings
from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from packflow.errors import PackflowError
from packflow.logging import FORMAT_ENV, LEVEL_ENV
from packflow.project import CACHE_ENV, PROJECT_FILE, locate_project
from packflow.redaction import redact, redact_text

from .broker_settings import BROKER_ENV_PREFIX, OLD_BROKER_ENV_PREFIX, BrokerSettings
from .errors import SettingsWarning

Guarantee = Literal["at-least-once", "exactly-once"]
Codec = Literal["schemaless", "single-object", "confluent"]
ResultFormat = Literal["json", "avro"]


ENV_PREFIX = "PACKFLOW_"


class SettingsError(PackflowError):
    """Settings that cannot be used; the message names each bad field."""


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    # What to run
    project: Path | None = Field(None, description="project dir or .zip with packflow.yaml")
    backend: str | None = Field(None, description="module:Class or file.py:Class")
    backend_config: dict[str, Any] = Field(
        default_factory=dict,
        description="backend config KEY=VALUE (YAML value), over the project's",
    )

    # Where
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka brokers host:port,...")
    group_id: str = Field("packflow", description="the consumer group of the replicas")
    group_instance_id: str | None = Field(None, description="static membership id")
    input_topic: str = Field("packflow.input", description="records to infer on")
    results_topic: str = Field("packflow.results", description="results, log-compacted")
    dead_letter_topic: str = Field("packflow.dead-letter", description="records that failed")

    # How
    max_batch_size: int = Field(256, ge=1, le=100_000, description="records per micro-batch")
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="longest wait to fill a batch")
    guarantee: Guarantee = Field("at-least-once", description="delivery of results")
    id_field: str | None = Field(
        "id", description="record field of the idempotency key ('' for topic/partition/offset)"
    )
    codec: Codec = Field("schemaless", description="Avro framing of the input")
    input_schema: str = Field("demo_input", description="reader schema: shipped name or .avsc")
    writer_schema: str | None = Field(None, description="schemaless writer, if not the reader")
    known_schemas: list[str] = Field(
        default_factory=list, description="single-object writer schemas (names or .avsc)"
    )
    registry_url: str | None = Field(None, description="Schema Registry URL (codec confluent)")
    registry_config: dict[str, str] = Field(
        default_factory=dict,
        description="Schema Registry client property, e.g. basic.auth.user.info=KEY:SECRET, "
        "ssl.ca.location=ca.pem (env PACKFLOW_REGISTRY_CONFIG__BASIC_AUTH_USER_INFO)",
    )
    registry_backoff_ms: int = Field(
        500,
        ge=1,
        le=600_000,
        description="a partition whose records need a schema from an unreachable registry "
        "is paused this long, doubling per try, then tried again",
    )
    registry_backoff_max_ms: int = Field(
        30_000, ge=1, le=3_600_000, description="longest pause between two tries of the registry"
    )
    result_format: ResultFormat = Field("json", description="encoding of results")
    result_headers: bool = Field(
        False, description="packflow.backend* and packflow.source.* headers on every result"
    )
    overlap: bool = Field(
        False, description="prepare the next batch on the host while the current one executes"
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics /healthz /readyz; replica i on +i"
    )
    metrics_host: str = Field("0.0.0.0", description="address the metrics server binds")
    stuck_after_s: float = Field(60.0, gt=0, description="/healthz fails after this long")
    dedup_max_keys: int = Field(100_000, ge=1, description="keys the repeat cache holds")
    dedup_ttl_s: float = Field(3600.0, gt=0, description="seconds a key stays in that cache")
    max_queued_per_partition: int = Field(
        4096, ge=1, description="records held per partition before it is paused"
    )
    retry_attempts: int = Field(
        3, ge=0, le=100, description="retries of a failing backend call (batch, then record)"
    )
    retry_backoff_ms: int = Field(
        100, ge=0, le=600_000, description="wait before the first retry; doubles for each next"
    )
    retry_backoff_max_ms: int = Field(
        2000, ge=0, le=600_000, description="longest wait before one retry (jittered down)"
    )
    retry_permanent_errors: list[str] = Field(
        default_factory=list,
        description="exception types (Class or module.Class) never retried: bad input",
    )
    commit_interval_ms: int = Field(500, ge=10, description="how often offsets are committed")
    max_crash_attempts: int = Field(
        3,
        ge=0,
        le=100,
        description="times a record may kill its replica before it is dead-lettered with "
        "stage crash (counted in the committed offset's metadata); 0: off",
    )
    execute_timeout_s: float | None = Field(
        None,
        gt=0,
        description="a batch running longer ends its replica like a crash, and a record "
        "that keeps doing so is dead-lettered with stage timeout (off by default)",
    )
    replicas: int = Field(1, ge=1, le=64, description="replica processes")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="seconds to drain on SIGTERM")
    kafka: dict[str, str] = Field(
        default_factory=dict, description="librdkafka property for both clients"
    )
    consumer_kafka: dict[str, str] = Field(
        default_factory=dict, description="librdkafka property for the consumer only"
    )
    producer_kafka: dict[str, str] = Field(
        default_factory=dict, description="librdkafka property for the producer only"
    )

    @field_validator("kafka", "consumer_kafka", "producer_kafka", "registry_config", mode="before")
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

    @model_validator(mode="after")
    def _timeout_needs_quarantine(self) -> RuntimeSettings:
        if self.execute_timeout_s is not None and self.max_crash_attempts == 0:
            raise ValueError(
                "execute_timeout_s needs max_crash_attempts >= 1 (a record that always runs "
                "past the timeout would otherwise end its replica for ever)"
            )
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
        import yaml  # only with a project: a replica without one starts ~30 ms sooner

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

    Warns (`SettingsWarning`) once for each `PACKFLOW_*` variable that names no setting.
    Raises `SettingsError` naming every invalid field."""
    for message in unknown_variables(os.environ):
        warnings.warn(message, SettingsWarning, stacklevel=2)
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return RuntimeSettings(**given)
    except pydantic.ValidationError as exc:
        raise SettingsError(f"invalid settings: {validation_problems(exc)}") from None
    except pydantic_settings.SettingsError as exc:  # a variable's value is not JSON
        raise SettingsError(
            f"invalid settings: {exc}: the variable of a list or mapping setting holds JSON, "
            """such as '["a", "b"]' or '{"key": "value"}'"""
        ) from None


def validation_problems(exc: pydantic.ValidationError) -> str:
    """A pydantic error as one line: `field: problem (got value)` for each bad field; the
    value of a secret setting shows as `***` (`packflow.redaction`)."""
    return "; ".join(
        f"{(where := '.'.join(str(p) for p in e['loc'])) or 'settings'}: {e['msg']}"
        + (
            f" (got {redact(e['input'], where)!r})"
            if e["type"] not in ("missing", "extra_forbidden")
            else ""
        )
        for e in exc.errors()
    )


def env_name(field: str) -> str:
    """The environment variable of a settings field: `input_schema` -> PACKFLOW_INPUT_SCHEMA."""
    return ENV_PREFIX + field.upper()


# PACKFLOW_ variables that are not runtime settings: the SDK's logging and cache, and those
# of Packflow's own test suite. The local broker's are found from its settings model.
OTHER_VARIABLES = frozenset(
    {
        LEVEL_ENV,
        FORMAT_ENV,
        CACHE_ENV,
        "PACKFLOW_FAULTS",
        "PACKFLOW_FAULTS_REPORT",
        "PACKFLOW_SCHEMA_REGISTRY_HOME",
        "PACKFLOW_SCHEMA_REGISTRY_URL",
        "PACKFLOW_TEXT_MODEL",
    }
)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One message per `PACKFLOW_*` variable in `environ` that names no setting, with the
    closest name that does: a mistyped variable is otherwise ignored without a word."""
    fields = RuntimeSettings.model_fields
    broker = [f.upper() for f in BrokerSettings.model_fields]
    known = (
        {env_name(f) for f in fields}
        | {BROKER_ENV_PREFIX + f for f in broker}
        | {OLD_BROKER_ENV_PREFIX + f for f in broker}
        | OTHER_VARIABLES
    )
    messages = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        # A nested value of a mapping setting: PACKFLOW_KAFKA__LINGER_MS, PACKFLOW_BACKEND_CONFIG__X
        head, nested, _ = name.partition("__")
        if nested and head[len(ENV_PREFIX) :].lower() in fields:
            continue
        messages.append(f"{variable} names no setting and is ignored; {_closest(name, known)}")
    return messages


def _closest(name: str, known: set[str]) -> str:
    if name.startswith(OLD_BROKER_ENV_PREFIX):
        # One underscore short of a librdkafka property (PACKFLOW_KAFKA_LINGER_MS).
        return f"did you mean PACKFLOW_KAFKA__{name[len(OLD_BROKER_ENV_PREFIX) :]} (librdkafka)?"
    bare = {k[len(ENV_PREFIX) :]: k for k in known if not k.startswith(OLD_BROKER_ENV_PREFIX)}
    match = difflib.get_close_matches(name[len(ENV_PREFIX) :], bare, n=1, cutoff=0.0)
    return f"did you mean {bare[match[0]]}?" if match else "see `packflow run --help`"


@contextmanager
def client_settings_checked() -> Iterator[None]:
    """Around making Kafka clients: a setting librdkafka refuses (no `sasl.username` for
    SASL, a misspelt property) is one `SettingsError` line, not a traceback."""
    from confluent_kafka import KafkaError, KafkaException  # the clients' caller has it

    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = error.str() if isinstance(error, KafkaError) else str(error)
        raise SettingsError(f"Kafka client settings refused: {redact_text(reason)}") from None


def consumer_config(settings: RuntimeSettings, replica: int = 0) -> dict[str, Any]:
    """librdkafka consumer settings of one replica: Packflow's, then `kafka`, then
    `consumer_kafka` (each passthrough may override what comes before it)."""
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
    return config | settings.kafka | settings.consumer_kafka


def replica_instance(settings: RuntimeSettings, index: int, owner_pid: int) -> str:
    """A replica's identity: its static membership id if configured, else host, the pid of
    the process that owns it (the supervisor, which outlives its restarts) and its index."""
    if settings.group_instance_id:
        return f"{settings.group_instance_id}-{index}"
    return f"{socket.gethostname()}-{owner_pid}-{index}"


def producer_config(settings: RuntimeSettings, instance: str = "0") -> dict[str, Any]:
    """librdkafka producer settings of one replica: Packflow's, then `kafka`, then
    `producer_kafka`. Exactly-once gives the replica the transactional id
    `packflow-<group>-<instance>`: unique among live replicas, and the same for a restarted
    replica (see `replica_instance`), so that it fences the one it replaces and aborts its
    open transaction at once."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        # Delivery callbacks only for failures: success is learnt from flush() or the
        # transaction's commit, and a callback per record delivered cost ~0.4 us of CPU.
        "delivery.report.only.error": True,
    }
    if settings.guarantee == "exactly-once":
        config["transactional.id"] = f"packflow-{settings.group_id}-{instance}"
    return config | settings.kafka | settings.producer_kafka
