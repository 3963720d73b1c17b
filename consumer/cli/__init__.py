"""The `packflow` command line: one module per command group, registered here.

Each command's module is imported only when that command runs (`main` builds the app with
the command named on the line, or with all of them for `--help`): `packflow run` then loads
what a replica needs, not the broker launcher, the demo or the status tables. `app`, the
whole command line, is built on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import typer

from packflow.errors import PackflowError

# name -> (module, attribute, is a group): the module under packflow.runtime.cli, or an
# absolute one (the SDK's commands, with upstream Packflow's flags, messages and exit codes).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "kafka": (".kafka", "app", True),
    "topics": (".topics", "app", True),
    "dlq": (".dlq", "app", True),
    "check": (".project", "check", False),
    "create": ("packflow.cli", "create", False),
    "export": ("packflow.cli", "export", False),
    "validate": ("packflow.cli", "validate", False),
    "run": (".run", "run", False),
    "produce": (".produce", "produce", False),
    "results": (".results", "results", False),
    "demo": (".demo", "demo", False),
    "status": (".status", "status", False),
    "acls": (".acls", "acls", False),
}


def _version(shown: bool) -> None:
    if shown:
        import packflow

        typer.echo(f"packflow {packflow.__version__}")
        raise typer.Exit()


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
    from . import messages

    messages.show_settings_warnings()


def make_app(only: Iterable[str] | None = None) -> typer.Typer:
    """The command line with the commands named in `only` (all of them when None)."""
    made = typer.Typer(
        name="packflow",
        help="Packflow: machine-learning inference on Kafka streams.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    made.callback()(_root)
    for name in COMMANDS if only is None else only:
        module_name, attribute, group = COMMANDS[name]
        module = importlib.import_module(module_name, __name__)
        target: Any = getattr(module, attribute)
        if group:
            made.add_typer(target, name=name)
        else:
            made.command(name)(target)
    return made


def _named_command(argv: list[str]) -> list[str] | None:
    """The one command on this command line, when there is one to load alone."""
    words = [a for a in argv if not a.startswith("-")]
    if words and words[0] in COMMANDS and argv[0] == words[0]:
        return [words[0]]
    return None  # --help, --version, a typo: the whole app, for its listing and suggestions


def main() -> None:
    """The console script: a Packflow error, or a value pydantic rejects, is one line on
    stderr and exit code 1."""
    import pydantic

    try:
        make_app(_named_command(sys.argv[1:]))()
    except PackflowError as exc:
        from . import messages

        messages.error(str(exc), getattr(exc, "detail", ""))
        raise SystemExit(1) from None
    except pydantic.ValidationError as exc:
        from ..settings import validation_problems
        from . import messages

        messages.error(f"invalid {exc.title}: {validation_problems(exc)}")
        raise SystemExit(1) from None


_app: typer.Typer | None = None


def __getattr__(name: str) -> Callable[..., Any] | typer.Typer:
    """`app`: the whole command line (for tests and typer's tools), made on first use."""
    global _app
    if name == "app":
        if _app is None:
            _app = make_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "app", "main", "make_app"]
