"""`packflow dlq`: list the dead letters (grouped by stage and error), show one, replay some."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from packflow.redaction import redact, redact_text

from ..codecs import make_decoder
from ..dlq import DeadLetter, group, read_dead_letters, replay, select
from ..errors import DecodeError
from ..settings import RuntimeSettings, load_settings
from .options import SettingsFlags, settings_options

app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)

# The settings every dlq command reads; `--topic` is the dead-letter topic here.
WHERE = ("bootstrap_servers", "dead_letter_topic", "project", "kafka", "consumer_kafka")
TOPIC = {"dead_letter_topic": ["--topic"]}
StageOpt = Annotated[str | None, typer.Option(help="decode, preprocess, backend, validate, encode")]
ErrorOpt = Annotated[str | None, typer.Option("--error-type", help="e.g. DecodeError")]


@app.command("list")
@settings_options(*WHERE, aliases=TOPIC)
def list_(
    stage: StageOpt = None,
    error_type: ErrorOpt = None,
    every: Annotated[bool, typer.Option("--all", help="one row per dead letter")] = False,
    *,
    flags: SettingsFlags,
) -> None:
    """Dead letters grouped by stage and error type (counts, the latest of each)."""
    settings = load_settings(**flags)
    letters = select(
        _dead_letters(settings),
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
            message = redact_text(g.example.info.get("error.message", ""))
            table.add_row(g.stage, g.error_type, str(g.count), g.example.where, message[:80])
    console.print(table)


@app.command()
@settings_options(*WHERE, "codec", "input_schema", aliases=TOPIC)
def show(
    where: Annotated[str, typer.Argument(help="TOPIC/PARTITION/OFFSET, as `list --all` shows")],
    *,
    flags: SettingsFlags,
) -> None:
    """One dead letter as JSON: key, headers, the error, and the record if it decodes."""
    settings = load_settings(**flags)
    found = select(_dead_letters(settings), where=[where])
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
    typer.echo(orjson.dumps(redact(shown), option=orjson.OPT_INDENT_2, default=str).decode())


@app.command("replay")
@settings_options(*WHERE, "input_topic", "producer_kafka", aliases=TOPIC)
def replay_(
    stage: StageOpt = None,
    error_type: ErrorOpt = None,
    key: Annotated[list[str] | None, typer.Option(help="only these keys (repeatable)")] = None,
    dead_letter: Annotated[
        list[str] | None, typer.Option(help="only these TOPIC/PARTITION/OFFSET (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="say what would be replayed")] = False,
    *,
    flags: SettingsFlags,
) -> None:
    """Produce the selected dead letters' original records to the input topic again, marked
    with a `packflow.replay.of` header. Fix the cause first (a new backend version)."""
    settings = load_settings(**flags)
    letters = select(
        _dead_letters(settings),
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
    count = replay(
        settings.bootstrap_servers,
        settings.input_topic,
        letters,
        kafka=settings.kafka | settings.producer_kafka,
    )
    typer.echo(f"replayed {count} to {settings.input_topic}")


def _dead_letters(settings: RuntimeSettings) -> Iterator[DeadLetter]:
    kafka = settings.kafka | settings.consumer_kafka
    return read_dead_letters(settings.bootstrap_servers, settings.dead_letter_topic, kafka)


def _key(d: DeadLetter) -> str:
    return (d.key or b"").decode(errors="replace")
