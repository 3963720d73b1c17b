"""`packflow status`: the group's members, who holds which partition, committed offsets and
lag per partition, as a table (`--watch` refreshes it) or as JSON."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from packflow.redaction import redact

from ..settings import load_settings
from ..status import GroupState, group_state
from .options import SettingsFlags, settings_options


@settings_options("group_id", "input_topic", "bootstrap_servers", "project", "kafka")
def status(
    watch: Annotated[
        float | None, typer.Option(help="refresh every N seconds until Ctrl-C")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    *,
    flags: SettingsFlags,
) -> None:
    """The consumer group's state as the broker sees it (the group is not joined)."""
    settings = load_settings(**flags)

    def read() -> GroupState:
        return group_state(
            settings.bootstrap_servers,
            settings.group_id,
            settings.input_topic,
            config=settings.kafka,
        )

    if as_json:
        shown = redact(read().to_json())
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    console = Console(width=200)
    if watch is None:
        console.print(render(read()))
        return
    with Live(render(read()), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(watch)
                live.update(render(read()), refresh=True)
        except KeyboardInterrupt:
            pass


def render(state: GroupState) -> Group:
    members = Table("member (client id)", "host", "partitions", title="members")
    for m in state.members:
        members.add_row(m.client_id, m.host, ",".join(map(str, m.partitions)) or "-")
    summary = Text(
        f"group {state.group} on {state.topic}: {state.state}, "
        f"{len(state.members)} members, lag {state.lag:,}"
    )
    partitions = Table("partition", "member", "committed", "end", "lag", title="partitions")
    for p in state.partitions:
        partitions.add_row(
            str(p.partition),
            p.member or "-",
            "-" if p.committed is None else f"{p.committed:,}",
            f"{p.end:,}",
            f"{p.lag:,}",
        )
    return Group(summary, partitions, members)
