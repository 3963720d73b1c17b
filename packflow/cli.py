"""The SDK's own commands, as upstream Packflow's `packflow` command line has them:
`create`, `validate` and `export`, with upstream's flags, its `Success:` / `Warning:` /
`Error:` lines on stdout, and exit status 1 on an error.

`cli` is the command group (upstream's name; built with typer, whose click it is), and
`app` the typer app it is made from. The `packflow` console script is the runtime's app,
which registers these same commands beside its own (`run`, `kafka`, `check`, ...); this
module imports nothing from the runtime.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import packflow
from packflow.errors import PackflowError
from packflow.project import NAME_PATTERN, PackflowProject

__all__ = ["app", "cli", "create", "export", "validate"]

app = typer.Typer(
    name="packflow",
    help="Command-line tools for creating, managing, and packaging Packflow inference projects.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NAME_RULE = (
    "Names must start with a letter and contain only letters, digits, hyphens, and underscores."
)


def success(message: str) -> None:
    typer.echo(f"{typer.style('Success:', fg='green')} {message}")


def warning(message: str) -> None:
    typer.echo(f"{typer.style('Warning:', fg='yellow')} {message}")


def error(message: str) -> None:
    typer.echo(f"{typer.style('Error:', fg='red')} {message}")


def _fail(message: str) -> typer.Exit:
    error(message)
    return typer.Exit(1)


def _interactive(no_input: bool) -> bool:
    """Prompts only for a person at a terminal, and never with --no-input."""
    return not no_input and sys.stdin.isatty()


def _git_email() -> str:
    try:
        found = subprocess.run(
            ["git", "config", "user.email"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return found.stdout.strip() if found.returncode == 0 else ""


def _prompt_name() -> str:
    while True:
        name = str(typer.prompt("Project name")).strip()
        if re.match(NAME_PATTERN, name):
            return name
        error(NAME_RULE)


def create(
    project_name: Annotated[
        str | None, typer.Argument(help="the project's name, and its directory's")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            "-f",
            help="Force initialization in a directory that already exists. No files will be "
            "deleted, but files may be overwritten.",
        ),
    ] = False,
    no_input: Annotated[
        bool,
        typer.Option("--no-input", help="Use defaults for all prompts (for scripting and CI)."),
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="where to create it")] = Path("."),
) -> None:
    """Initialize a new project from a template in the current working directory.

    If PROJECT_NAME is omitted, an interactive setup wizard will guide project creation.
    Pass --no-input to skip all prompts and use default values.
    """
    if project_name and not re.match(NAME_PATTERN, project_name):
        raise _fail(f"Invalid project name '{project_name}'. {NAME_RULE}")
    config_data: dict[str, Any] = {"version": "0.1.0"}
    if _interactive(no_input):
        if not project_name:
            typer.echo(typer.style("=== Initializing New Packflow Project ===", bold=True))
            project_name = _prompt_name()
        else:
            typer.echo(typer.style(f"=== Initializing {project_name} ===", bold=True))
        description = typer.prompt("Description", default="", show_default=False)
        version = typer.prompt("Version", default="0.1.0")
        maintainer = typer.prompt("Maintainer email", default=_git_email(), show_default=True)
        config_data = {"version": version}
        if description:
            config_data["description"] = description
        if maintainer:
            config_data["maintainers"] = [maintainer]
    elif not project_name:
        raise _fail(
            "Project name is required in non-interactive mode. "
            "Usage: packflow create PROJECT_NAME [--no-input]"
        )
    try:
        PackflowProject.create(
            project_name, force=force, config_data=config_data, directory=directory
        )
    except PackflowError as exc:
        raise _fail(str(exc)) from None
    success(f"Created {project_name}/")
    typer.echo()
    typer.echo("  Next steps:")
    typer.echo(f"    cd {project_name}")
    typer.echo("    Edit inference.py   - implement the execute() method")
    typer.echo("    python validate.py  - run the backend on sample.jsonl")
    typer.echo("    packflow validate   - check project structure")
    typer.echo("    packflow export     - package for distribution")
    typer.echo()


def export(
    project_path: Annotated[Path, typer.Argument(help="the project directory")] = Path("."),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show detailed validation checks during export.")
    ] = False,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="where to write the archive")
    ] = Path("."),
) -> None:
    """Package the project as a distributable .zip archive (after validating it)."""
    try:
        project = PackflowProject(project_path)
        if verbose:
            typer.echo("\n=== Export Validation ===")
            typer.echo(f"Project: {project.base_dir}")
        archive = project.export(output_dir, verbose=verbose)
    except PackflowError as exc:
        raise _fail(str(exc)) from None
    for message in project.export_warnings:
        warning(message)
    success(f"Saved Package to {archive}")


def validate(
    project_path: Annotated[Path, typer.Argument(help="the project directory")] = Path("."),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show detailed validation checks.")
    ] = False,
    no_warnings: Annotated[
        bool, typer.Option("--no-warnings", help="Suppress warning messages.")
    ] = False,
) -> None:
    """Run all project validation checks and report results."""
    try:
        project = PackflowProject(project_path)
        config = project.load_config()
        if verbose:
            typer.echo("\n=== Validation ===")
            typer.echo(f"Project: {project.base_dir}")
        errors, warnings = project.validate_required_files(verbose=verbose, config=config)
    except PackflowError as exc:
        raise _fail(str(exc)) from None
    shown = [] if no_warnings else warnings
    if errors or shown:
        counts = [typer.style(f"{len(errors)} error(s)", fg="red")] if errors else []
        if shown:
            counts.append(typer.style(f"{len(shown)} warning(s)", fg="yellow"))
        typer.echo(f"\n{', '.join(counts)} found\n")
    for message in errors:
        error(message)
    for message in shown:
        warning(message)
    if errors:
        raise typer.Exit(1)
    success("Validation passed with warnings." if shown else "All validation checks passed.")


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"packflow, version {packflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Command-line tools for creating, managing, and packaging Packflow inference projects."""


app.command("create")(create)
app.command("export")(export)
app.command("validate")(validate)

cli = typer.main.get_command(app)
