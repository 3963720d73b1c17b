"""`packflow topics create`: the input, results (compacted) and dead-letter topics."""

from __future__ import annotations

from typing import Annotated

import typer

from consumer.topics import create_topics, pipeline_topics

app = typer.Typer(help="Topics of a Packflow pipeline.", no_args_is_help=True)


@app.command()
def create(
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="PACKFLOW_BOOTSTRAP_SERVERS", help="Kafka to talk to")
    ] = "127.0.0.1:9092",
    input_topic: Annotated[str, typer.Option(help="records to infer on")] = "packflow.input",
    results_topic: Annotated[str, typer.Option(help="results, log-compacted")] = "packflow.results",
    dead_letter_topic: Annotated[
        str, typer.Option(help="records that failed")
    ] = "packflow.dead-letter",
    partitions: Annotated[int, typer.Option(min=1)] = 6,
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create the pipeline's three topics; existing ones are left as they are."""
    specs = pipeline_topics(
        input_topic, results_topic, dead_letter_topic, partitions, replication_factor
    )
    created = create_topics(bootstrap_servers, specs)
    for spec in specs:
        verb = "created" if created[spec.name] else "exists "
        extra = ", compacted" if spec.config.get("cleanup.policy") == "compact" else ""
        typer.echo(
            f"{verb} {spec.name} ({spec.partitions} partitions, "
            f"replication {spec.replication_factor}{extra})"
        )
