"""`packflow results`: read the results topic (to its end, or following it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from consumer.codecs import decode_result
from consumer.headers import read_packflow_headers
from consumer.results import read_topic
from consumer.settings import load_settings


def results(
    follow: Annotated[bool, typer.Option(help="keep reading new results")] = False,
    dedup: Annotated[bool, typer.Option(help="show each key once")] = False,
    fmt: Annotated[Literal["json", "table"], typer.Option("--format")] = "json",
    limit: Annotated[int | None, typer.Option(help="stop after N results")] = None,
    bootstrap_servers: Annotated[str | None, typer.Option()] = None,
    topic: Annotated[str | None, typer.Option(help="default: the results topic")] = None,
    project: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Print results as JSON lines (or a table), read with isolation read_committed."""
    settings = load_settings(
        bootstrap_servers=bootstrap_servers, results_topic=topic, project=project
    )
    seen: set[bytes] = set()
    rows = []
    for message in read_topic(settings.bootstrap_servers, settings.results_topic, follow=follow):
        key = message.key() or b""
        if dedup and key in seen:
            continue
        seen.add(key)
        result = decode_result(message.value() or b"", settings.result_format)
        if fmt == "json":
            typer.echo(orjson.dumps(result).decode())
        else:
            source = read_packflow_headers(message.headers())
            where = f"{source.get('source.partition')}/{source.get('source.offset')}"
            rows.append((key.decode(), where, orjson.dumps(result.get("output")).decode()))
        if limit is not None and len(seen) >= limit:
            break
    if fmt == "table":
        table = Table("key", "source partition/offset", "output", title=settings.results_topic)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
