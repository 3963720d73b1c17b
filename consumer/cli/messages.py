"""What the command line says on stderr when something is wrong: one line each,
`packflow: error: ...` or `packflow: warning: ...`, never a traceback for a bad value."""

from __future__ import annotations

import warnings
from typing import TextIO

import typer

from packflow.redaction import redact_text

from ..errors import SettingsWarning


def error(message: str, detail: str = "") -> None:
    """An error as one line (and `detail`, such as a log's last lines, below it); URL
    credentials in either show as `***`."""
    typer.echo(f"packflow: error: {redact_text(message)}", err=True)
    if detail:
        typer.echo(redact_text(detail), err=True)


def warning(message: str) -> None:
    typer.echo(f"packflow: warning: {redact_text(message)}", err=True)


def show_settings_warnings() -> None:
    """From now on, show a `SettingsWarning` as one warning line (others as Python does)."""
    if getattr(warnings.showwarning, "_packflow", False):
        return
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, SettingsWarning):
            warning(str(message))
        else:
            shown(message, category, filename, lineno, file, line)

    show._packflow = True  # type: ignore[attr-defined]
    warnings.showwarning = show
