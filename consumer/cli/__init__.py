"""The `packflow` command line: one module per command group, registered here."""

from __future__ import annotations

import typer

from consumer.cli import demo, dlq, kafka, produce, project, results, run, status, topics
from packflow.errors import PackflowError

app = typer.Typer(
    name="packflow",
    help="Packflow: machine-learning inference on Kafka streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.add_typer(dlq.app, name="dlq")
app.command("check")(project.check)
app.command("create")(project.create)
app.command("export")(project.export)
app.command("run")(run.run)
app.command("produce")(produce.produce)
app.command("results")(results.results)
app.command("demo")(demo.demo)
app.command("status")(status.status)


def main() -> None:
    """The console script: a Packflow error is one line on stderr and exit code 1."""
    try:
        app()
    except PackflowError as exc:
        typer.echo(f"packflow: error: {exc}", err=True)
        detail = getattr(exc, "detail", "")
        if detail:
            typer.echo(detail, err=True)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
