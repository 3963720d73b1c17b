"""`packflow produce`: Avro records to the input topic, from JSON lines or generated."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaError, Message, Producer
from rich.console import Console
from rich.progress import Progress

from consumer.codecs import make_encoder
from consumer.contracts import load_schema
from consumer.errors import TopicError
from consumer.generate import synthetic_records
from consumer.settings import Codec, RuntimeSettings, load_settings
from packflow.samples import read_records


def produce_records(
    settings: RuntimeSettings,
    records: Iterable[dict[str, Any]],
    *,
    total: int | None = None,
    key_field: str | None = "id",
    rate: float | None = None,
    progress: bool = False,
) -> int:
    """Encode and produce `records` to the input topic, at most `rate` per second; returns
    how many the broker acknowledged (all of them, or it raises)."""
    encoder = make_encoder(
        settings.codec,
        settings.input_schema,
        registry_url=settings.registry_url,
        subject=f"{settings.input_topic}-value",
    )
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 10})
    failed: list[KafkaError] = []

    def report(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failed.append(error)

    began = time.monotonic()
    sent = 0
    console = Console(stderr=True)
    with Progress(console=console, disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task(f"producing to {settings.input_topic}", total=total)
        for record in records:
            key = record.get(key_field) if key_field else None
            value = encoder.encode(record)
            while True:
                try:
                    producer.produce(
                        settings.input_topic,
                        value=value,
                        key=None if key is None else str(key).encode(),
                        on_delivery=report,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
                bar.update(task, completed=sent)
                if failed:
                    break
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0.005:
                    time.sleep(ahead)
        left = producer.flush(60)
        bar.update(task, completed=sent)
    if failed or left:
        reason = failed[0].str() if failed else f"{left} records unacknowledged after 60 s"
        raise TopicError(f"producing to {settings.input_topic} failed: {reason}")
    return sent


def produce(
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSON lines, or an Avro container file")
    ] = None,
    generate: Annotated[int | None, typer.Option(help="N synthetic records")] = None,
    start: Annotated[int, typer.Option(help="first generated record number")] = 0,
    seed: Annotated[int, typer.Option(help="seed of generated values")] = 0,
    rate: Annotated[float | None, typer.Option(help="records per second")] = None,
    key_field: Annotated[str, typer.Option(help="field used as message key ('' for none)")] = "id",
    bootstrap_servers: Annotated[str | None, typer.Option()] = None,
    topic: Annotated[str | None, typer.Option(help="default: the input topic")] = None,
    codec: Annotated[Codec | None, typer.Option()] = None,
    schema: Annotated[str | None, typer.Option(help="schema name or .avsc")] = None,
    registry_url: Annotated[str | None, typer.Option()] = None,
    project: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Produce Avro records to the input topic (settings as for `packflow run`)."""
    if (input_file is None) == (generate is None):
        raise typer.BadParameter("give exactly one of --input FILE or --generate N")
    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        input_topic=topic,
        codec=codec,
        input_schema=schema,
        registry_url=registry_url,
        project=project,
    )
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
