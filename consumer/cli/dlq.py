"""`packflow dlq`: list the dead letters (grouped by stage and error), show one, replay some."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from consumer.codecs import make_decoder
from consumer.dlq import DeadLetter, group, read_dead_letters, replay, select
from consumer.errors import DecodeError
from consumer.settings import RuntimeSettings, load_settings

app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)

Bootstrap = Annotated[str | None, typer.Option(help="default: the settings' bootstrap servers")]
Topic = Annotated[str | None, typer.Option(help="default: the dead-letter topic")]
Project = Annotated[Path | None, typer.Option()]
StageOpt = Annotated[str | None, typer.Option(help="decode, preprocess, backend, validate, encode")]
ErrorOpt = Annotated[str | None, typer.Option("--error-type", help="e.g. DecodeError")]


def _settings(bootstrap: str | None, topic: str | None, project: Path | None) -> RuntimeSettings:
    return load_settings(bootstrap_servers=bootstrap, dead_letter_topic=topic, project=project)


@app.command("list")
def list_(
    stage: StageOpt = None,
    error_type: ErrorOpt = None,
    every: Annotated[bool, typer.Option("--all", help="one row per dead letter")] = False,
    bootstrap_servers: Bootstrap = None,
    topic: Topic = None,
    project: Project = None,
) -> None:
    """Dead letters grouped by stage and error type (counts, the latest of each)."""
    settings = _settings(bootstrap_servers, topic, project)
    letters = select(
        read_dead_letters(settings.bootstrap_servers, settings.dead_letter_topic),
        stage=stage,
        error_type=error_type,
    )
    console = Console(width=160)
    if every:
        table = Table("dead letter", "key", "stage", "error", "source", title=f"{len(letters)}")
        for d in letters:
            table.add_row(d.where, _key(d), d.stage, d.error_type, d.source)
    else:
        table = Table(
            "stage", "error", "count", "latest", "message", title=settings.dead_letter_topic
        )
        for g in group(letters):
            message = g.example.info.get("error.message", "")
            table.add_row(g.stage, g.error_type, str(g.count), g.example.where, message[:80])
    console.print(table)


@app.command()
def show(
    where: Annotated[str, typer.Argument(help="TOPIC/PARTITION/OFFSET, as `list --all` shows")],
    bootstrap_servers: Bootstrap = None,
    topic: Topic = None,
    project: Project = None,
) -> None:
    """One dead letter as JSON: key, headers, the error, and the record if it decodes."""
    settings = _settings(bootstrap_servers, topic, project)
    found = select(
        read_dead_letters(settings.bootstrap_servers, settings.dead_letter_topic), where=[where]
    )
    if not found:
        raise typer.BadParameter(f"no dead letter {where} in {settings.dead_letter_topic}")
    d = found[0]
    shown: dict[str, object] = {
        "dead_letter": d.where,
        "key": _key(d),
        "headers": {k: v.decode(errors="replace") for k, v in d.headers},
        "value_bytes": len(d.value or b""),
    }
    decoded = make_decoder(settings.codec, settings.input_schema).decode_batch([d.value])[0]
    if isinstance(decoded, DecodeError):
        shown["value_hex"] = (d.value or b"")[:256].hex()
        shown["decode_error"] = str(decoded)
    else:
        shown["record"] = decoded
    typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2, default=str).decode())


@app.command("replay")
def replay_(
    stage: StageOpt = None,
    error_type: ErrorOpt = None,
    key: Annotated[list[str] | None, typer.Option(help="only these keys (repeatable)")] = None,
    dead_letter: Annotated[
        list[str] | None, typer.Option(help="only these TOPIC/PARTITION/OFFSET (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="say what would be replayed")] = False,
    input_topic: Annotated[str | None, typer.Option(help="default: the input topic")] = None,
    bootstrap_servers: Bootstrap = None,
    topic: Topic = None,
    project: Project = None,
) -> None:
    """Produce the selected dead letters' original records to the input topic again, marked
    with a `packflow.replay.of` header. Fix the cause first (a new backend version)."""
    settings = load_settings(
        bootstrap_servers=bootstrap_servers,
        dead_letter_topic=topic,
        input_topic=input_topic,
        project=project,
    )
    letters = select(
        read_dead_letters(settings.bootstrap_servers, settings.dead_letter_topic),
        stage=stage,
        error_type=error_type,
        keys=key or (),
        where=dead_letter or (),
    )
    if dry_run:
        for d in letters:
            typer.echo(f"{d.where}\t{_key(d)}\t{d.stage}\t{d.error_type}")
        typer.echo(f"would replay {len(letters)} to {settings.input_topic}")
        return
    count = replay(settings.bootstrap_servers, settings.input_topic, letters)
    typer.echo(f"replayed {count} to {settings.input_topic}")


def _key(d: DeadLetter) -> str:
    return (d.key or b"").decode(errors="replace")
