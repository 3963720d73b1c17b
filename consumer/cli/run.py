"""`packflow run`: consumer replicas running a backend on the input topic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
import yaml

from consumer.cli.options import parse_pairs
from consumer.settings import Codec, Guarantee, ResultFormat, load_settings
from consumer.supervisor import Supervisor, exit_replica, run_replica
from packflow.logging import configure_logging

Pairs = Annotated[list[str] | None, typer.Option()]


def _config_values(pairs: dict[str, str] | None) -> dict[str, object] | None:
    # Backend config values are YAML scalars/lists (`threshold=0.7`, `labels=[a, b]`).
    if pairs is None:
        return None
    return {k: yaml.safe_load(v) for k, v in pairs.items()}


def run(
    backend: Annotated[str | None, typer.Option(help="module:Class or file.py:Class")] = None,
    project: Annotated[
        Path | None, typer.Option(help="project dir or .zip (packflow.yaml)")
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="replica processes")] = None,
    bootstrap_servers: Annotated[str | None, typer.Option()] = None,
    group_id: Annotated[str | None, typer.Option()] = None,
    group_instance_id: Annotated[str | None, typer.Option(help="static membership")] = None,
    input_topic: Annotated[str | None, typer.Option()] = None,
    results_topic: Annotated[str | None, typer.Option()] = None,
    dead_letter_topic: Annotated[str | None, typer.Option()] = None,
    max_batch_size: Annotated[int | None, typer.Option()] = None,
    max_wait_ms: Annotated[int | None, typer.Option()] = None,
    guarantee: Annotated[Guarantee | None, typer.Option()] = None,
    id_field: Annotated[str | None, typer.Option(help="'' for topic/partition/offset keys")] = None,
    codec: Annotated[Codec | None, typer.Option()] = None,
    schema: Annotated[str | None, typer.Option(help="reader schema: name or .avsc")] = None,
    registry_url: Annotated[str | None, typer.Option()] = None,
    result_format: Annotated[ResultFormat | None, typer.Option()] = None,
    result_headers: Annotated[
        bool | None,
        typer.Option(
            "--result-headers/--no-result-headers",
            help="backend and source topic/partition/offset headers on each result",
        ),
    ] = None,
    overlap: Annotated[
        bool | None,
        typer.Option(
            "--overlap/--no-overlap",
            help="prepare the next batch on the host while the current one executes (GPUs)",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve /metrics /healthz /readyz (replica i: port + i; 0: any port)"),
    ] = None,
    shutdown_timeout: Annotated[float | None, typer.Option(help="seconds")] = None,
    config: Pairs = None,
    kafka: Pairs = None,
    print_settings: Annotated[
        bool, typer.Option("--print-settings", help="show the effective settings and exit")
    ] = False,
) -> None:
    """Run replicas of one consumer group: Avro records in, validated results out.

    Settings: flags > PACKFLOW_* environment > `runtime:` in packflow.yaml > defaults.
    `--config KEY=VALUE` sets backend config; `--kafka KEY=VALUE` passes to librdkafka.
    """
    settings = load_settings(
        backend=backend,
        project=project,
        replicas=replicas,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        group_instance_id=group_instance_id,
        input_topic=input_topic,
        results_topic=results_topic,
        dead_letter_topic=dead_letter_topic,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        guarantee=guarantee,
        id_field=id_field,
        codec=codec,
        input_schema=schema,
        registry_url=registry_url,
        result_format=result_format,
        result_headers=result_headers,
        overlap=overlap,
        metrics_port=metrics_port,
        shutdown_timeout_s=shutdown_timeout,
        backend_config=_config_values(parse_pairs(config, "--config")),
        kafka=parse_pairs(kafka, "--kafka"),
    )
    if print_settings:
        typer.echo(orjson.dumps(settings.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
        return
    configure_logging()
    if settings.replicas > 1:
        raise typer.Exit(Supervisor(settings).run())
    exit_replica(run_replica(settings))
