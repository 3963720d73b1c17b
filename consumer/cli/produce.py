"""`packflow produce`: Avro records to the input topic, from JSON lines or generated."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from packflow.samples import read_records

from ..client import Producer
from ..contracts import load_schema
from ..generate import synthetic_records
from ..settings import RuntimeSettings, load_settings
from .options import SettingsFlags, settings_options


def produce_records(
    settings: RuntimeSettings,
    records: Iterable[dict[str, Any]],
    *,
    total: int | None = None,
    key_field: str | None = "id",
    rate: float | None = None,
    progress: bool = False,
) -> int:
    """Produce `records` to the input topic with the client's `Producer`, at most `rate` per
    second; returns how many the broker acknowledged (all of them, or it raises)."""
    began = time.monotonic()
    sent = 0
    console = Console(stderr=True)
    with (
        Producer(settings, key_field=key_field) as producer,
        Progress(console=console, disable=not (progress and console.is_terminal)) as bar,
    ):
        task = bar.add_task(f"producing to {settings.input_topic}", total=total)
        for record in records:
            producer.send(record)
            sent += 1
            if sent % 1000 == 0:
                bar.update(task, completed=sent)
                if producer.failed:
                    break
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0.005:
                    time.sleep(ahead)
        producer.flush()
        bar.update(task, completed=sent)
    return sent


@settings_options(
    "bootstrap_servers",
    "input_topic",
    "codec",
    "input_schema",
    "registry_url",
    "registry_config",
    "project",
    "kafka",
    "producer_kafka",
    aliases={"input_topic": ["--topic"]},
)
def produce(
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSON lines, or an Avro container file")
    ] = None,
    generate: Annotated[int | None, typer.Option(help="N synthetic records")] = None,
    start: Annotated[int, typer.Option(help="first generated record number")] = 0,
    seed: Annotated[int, typer.Option(help="seed of generated values")] = 0,
    rate: Annotated[float | None, typer.Option(help="records per second")] = None,
    key_field: Annotated[str, typer.Option(help="field used as message key ('' for none)")] = "id",
    *,
    flags: SettingsFlags,
) -> None:
    """Produce Avro records to the input topic (settings as for `packflow run`)."""
    if (input_file is None) == (generate is None):
        raise typer.BadParameter("give exactly one of --input FILE or --generate N")
    settings = load_settings(**flags)
    records: Iterable[dict[str, Any]]
    if generate is not None:
        schema_ = load_schema(settings.input_schema)
        records = synthetic_records(schema_, generate, seed=seed, start=start)
    else:
        assert input_file is not None
        records = read_records(input_file)
    sent = produce_records(
        settings, records, total=generate, key_field=key_field or None, rate=rate, progress=True
    )
    typer.echo(f"produced {sent} records to {settings.input_topic}", file=sys.stderr)
