"""`packflow results`: read the results topic (to its end, or following it)."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ..client import Results
from ..settings import load_settings
from .options import SettingsFlags, settings_options


@settings_options(
    "bootstrap_servers",
    "results_topic",
    "result_format",
    "project",
    "kafka",
    "consumer_kafka",
    aliases={"results_topic": ["--topic"]},
)
def results(
    follow: Annotated[bool, typer.Option(help="keep reading new results")] = False,
    dedup: Annotated[bool, typer.Option(help="show each key once")] = False,
    fmt: Annotated[Literal["json", "table"], typer.Option("--format")] = "json",
    limit: Annotated[int | None, typer.Option(help="stop after N results")] = None,
    *,
    flags: SettingsFlags,
) -> None:
    """Print results as JSON lines (or a table), read with isolation read_committed."""
    settings = load_settings(**flags)
    rows = []
    for shown, result in enumerate(Results(settings, follow=follow, dedup=dedup), 1):
        if fmt == "json":
            typer.echo(orjson.dumps(result.envelope(), option=orjson.OPT_SORT_KEYS).decode())
        else:
            source = result.source
            where = f"{source.partition}/{source.offset}" if source else "None/None"
            rows.append((result.key, where, orjson.dumps(result.output).decode()))
        if limit is not None and shown >= limit:
            break
    if fmt == "table":
        table = Table("key", "source partition/offset", "output", title=settings.results_topic)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
