"""How to run the local cluster (`packflow kafka ...`): its settings and their environment
variables, apart from the launcher (consumer/broker.py) so that reading the runtime's
settings does not import it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import SettingsWarning


def _default_data_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "packflow" / "kafka"


def _pinned_version() -> str:
    from .jars import pinned_kafka_version  # the launcher's: only when a cluster is run

    return pinned_kafka_version()


BROKER_ENV_PREFIX = "PACKFLOW_BROKER_"
# The prefix before 0.x was one underscore away from librdkafka's PACKFLOW_KAFKA__ (runtime
# settings): still read, with a warning, below the new one.
OLD_BROKER_ENV_PREFIX = "PACKFLOW_KAFKA_"


class BrokerSettings(BaseSettings):
    """How to run the local cluster. Environment: `PACKFLOW_BROKER_<FIELD>` (e.g. `_PORT`);
    the old `PACKFLOW_KAFKA_<FIELD>` still works, with a warning."""

    model_config = SettingsConfigDict(env_prefix=BROKER_ENV_PREFIX, frozen=True, extra="forbid")

    nodes: Literal[1, 3] = 1
    port: int = Field(9092, ge=1, le=65533, description="first broker port; node i uses port+i")
    controller_port: int = Field(9192, ge=1, le=65533, description="first controller port")
    data_dir: Path = Field(default_factory=_default_data_dir)
    home: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "packflow" / "kafka",
        description="cache of resolved Kafka versions (jars in <home>/<version>/libs)",
    )
    version: str = Field(default_factory=_pinned_version)
    heap: str = "1g"
    mvn: str = "mvn"
    start_timeout_s: float = Field(60.0, gt=0)
    stop_timeout_s: float = Field(20.0, gt=0)
    broker_config: dict[str, str] = Field(
        default_factory=dict, description="extra server.properties entries, applied last"
    )
    secure: bool = Field(
        False,
        description="clients on SASL_SSL only (SCRAM-SHA-512 users admin and packflow), "
        "with ACLs enforced (consumer/broker_security.py)",
    )

    @model_validator(mode="after")
    def _ports_apart(self) -> BrokerSettings:
        if abs(self.controller_port - self.port) < self.nodes:
            raise ValueError(
                f"controller_port {self.controller_port} overlaps the broker ports "
                f"{self.port}..{self.port + self.nodes - 1}"
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
        return (init_settings, env_settings, _OldPrefixSource(settings_cls))


class _OldPrefixSource(EnvSettingsSource):
    """`PACKFLOW_KAFKA_<FIELD>`, the broker's old variables: a warning for each one set."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix=OLD_BROKER_ENV_PREFIX)

    def __call__(self) -> dict[str, Any]:
        found = super().__call__()
        for field in found:
            old, new = OLD_BROKER_ENV_PREFIX + field.upper(), BROKER_ENV_PREFIX + field.upper()
            warnings.warn(f"{old} is deprecated: name it {new}", SettingsWarning, stacklevel=2)
        return found


__all__ = ["BROKER_ENV_PREFIX", "OLD_BROKER_ENV_PREFIX", "BrokerSettings"]
