"""The `packflow` command line: one module per command group, registered here."""

from __future__ import annotations

import pydantic
import typer

import packflow
from packflow import cli as sdk_cli
from packflow.errors import PackflowError

from ..settings import validation_problems
from . import acls, demo, dlq, kafka, messages, produce, project, results, run, status, topics

app = typer.Typer(
    name="packflow",
    help="Packflow: machine-learning inference on Kafka streams.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"packflow {packflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the installed Packflow version and exit.",
    ),
) -> None:
    """Packflow: machine-learning inference on Kafka streams."""
    messages.show_settings_warnings()


app.add_typer(kafka.app, name="kafka")
app.add_typer(topics.app, name="topics")
app.add_typer(dlq.app, name="dlq")
app.command("check")(project.check)
# The SDK's commands, with upstream Packflow's flags, messages and exit codes.
app.command("create")(sdk_cli.create)
app.command("export")(sdk_cli.export)
app.command("validate")(sdk_cli.validate)
app.command("run")(run.run)
app.command("produce")(produce.produce)
app.command("results")(results.results)
app.command("demo")(demo.demo)
app.command("status")(status.status)
app.command("acls")(acls.acls)


def main() -> None:
    """The console script: a Packflow error, or a value pydantic rejects, is one line on
    stderr and exit code 1."""
    try:
        app()
    except PackflowError as exc:
        messages.error(str(exc), getattr(exc, "detail", ""))
        raise SystemExit(1) from None
    except pydantic.ValidationError as exc:
        messages.error(f"invalid {exc.title}: {validation_problems(exc)}")
        raise SystemExit(1) from None


__all__ = ["app", "main"]
