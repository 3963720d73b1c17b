"""`packflow run`: consumer replicas running a backend on the input topic."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer

from packflow.logging import configure_logging
from packflow.redaction import redact

from ..settings import load_settings
from ..supervisor import Supervisor, exit_replica, run_replica
from ..tracing import check_tracing
from .options import SettingsFlags, settings_options


@settings_options()
def run(
    print_settings: Annotated[
        bool, typer.Option("--print-settings", help="show the effective settings and exit")
    ] = False,
    *,
    flags: SettingsFlags,
) -> None:
    """Run replicas of one consumer group: Avro records in, validated results out.

    Every setting is a flag named as its variable (`--input-schema`, PACKFLOW_INPUT_SCHEMA).
    `--backend-config KEY=VALUE` (or `--config`, `--set`) sets backend config; `--kafka`,
    `--consumer-kafka`, `--producer-kafka KEY=VALUE` pass to librdkafka.
    """
    settings = load_settings(**flags)
    if print_settings:
        shown = redact(settings.model_dump(mode="json"))
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2))
        return
    # A tracing set-up that cannot work stops here, before any replica starts.
    check_tracing()
    configure_logging()
    if settings.replicas > 1:
        raise typer.Exit(Supervisor(settings).run())
    exit_replica(run_replica(settings))
