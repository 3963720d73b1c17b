"""`packflow topics create`: the input, results (compacted) and dead-letter topics."""

from __future__ import annotations

from typing import Annotated

import typer

from ..settings import load_settings
from ..topics import create_topics, pipeline_topics
from .options import SettingsFlags, settings_options

app = typer.Typer(help="Topics of a Packflow pipeline.", no_args_is_help=True)


@app.command()
@settings_options(
    "bootstrap_servers", "input_topic", "results_topic", "dead_letter_topic", "project", "kafka"
)
def create(
    partitions: Annotated[int, typer.Option(min=1)] = 6,
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
    *,
    flags: SettingsFlags,
) -> None:
    """Create the pipeline's three topics; existing ones are left as they are."""
    settings = load_settings(**flags)
    specs = pipeline_topics(
        settings.input_topic,
        settings.results_topic,
        settings.dead_letter_topic,
        partitions,
        replication_factor,
    )
    created = create_topics(settings.bootstrap_servers, specs, config=settings.kafka)
    for spec in specs:
        verb = "created" if created[spec.name] else "exists "
        extra = ", compacted" if spec.config.get("cleanup.policy") == "compact" else ""
        typer.echo(
            f"{verb} {spec.name} ({spec.partitions} partitions, "
            f"replication {spec.replication_factor}{extra})"
        )
