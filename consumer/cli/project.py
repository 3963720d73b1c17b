"""`packflow check`: running a backend offline on records from a file.

Nothing here needs a broker. (`create`, `validate` and `export` are the SDK's own commands,
`packflow.cli`, registered beside this one.)

Exit status: 0 on success; 1 when the backend ran but failed (a stage raised, or outputs
broke validation); 2 when the command could not start (bad arguments, a backend that does
not load, an unreadable input file).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from packflow import InferenceBackend
from packflow.errors import BackendError, PackflowError, ValidationError, short_repr
from packflow.loaders import InferenceBackendLoader, load_backend
from packflow.samples import read_records
from packflow.validation import missing_output_keys

from . import messages
from .options import SettingsFlags, settings_options

EXIT_FAILED = 1
EXIT_CANNOT_START = 2


class OutputFormat(enum.StrEnum):
    jsonl = "jsonl"
    table = "table"


def _fail(message: str, code: int) -> typer.Exit:
    messages.error(message)
    return typer.Exit(code)


def open_backend(reference: str, overrides: dict[str, Any]) -> InferenceBackend:
    """A backend from `module:Class`, `path/to/file.py:Class`, or a project (its directory,
    `packflow.yaml` or exported .zip)."""
    if ":" in reference and not Path(reference).exists():
        return load_backend(reference, **overrides)
    return InferenceBackendLoader.from_project(reference, **overrides)


def _batches(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(records, size)):
        yield batch


# The backend config option of `packflow run` (`--backend-config`, `--config`, `--set`, `-s`).
@settings_options("backend_config")
def check(
    backend: Annotated[
        str,
        typer.Argument(
            help="module:Class, path/to/file.py:Class, or a project (directory, "
            "packflow.yaml or .zip)"
        ),
    ],
    input: Annotated[
        Path,
        typer.Option("--input", "-i", help="records: JSON lines, or an Avro container file"),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="records per pipeline call")
    ] = 64,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="how to print the outputs")
    ] = OutputFormat.jsonl,
    *,
    flags: SettingsFlags,
) -> None:
    """Run a backend's pipeline offline on records from a file, validating every output.

    Valid outputs go to stdout (JSON lines or a table); invalid rows, warnings and the
    per-stage latency summary go to stderr. Exits 1 when any row fails.
    """
    overrides = flags.get("backend_config", {})
    try:
        loaded = open_backend(backend, overrides)
        records = read_records(input)
    except PackflowError as exc:
        raise _fail(str(exc), EXIT_CANNOT_START) from None
    err = Console(stderr=True)
    rows: list[tuple[int, dict[str, Any]]] = []
    failed = 0
    offset = 0
    try:
        for batch in _batches(records, batch_size):
            failed += _check_batch(loaded, batch, offset, rows, output)
            offset += len(batch)
    except PackflowError as exc:  # the input file turned out unreadable part-way
        raise _fail(str(exc), EXIT_CANNOT_START) from None
    if output is OutputFormat.table:
        _print_table(rows)
    _print_summary(loaded, offset, err)
    if failed:
        raise _fail(f"{failed} of {offset} rows failed", EXIT_FAILED)


def _check_batch(
    backend: InferenceBackend,
    batch: list[dict[str, Any]],
    offset: int,
    rows: list[tuple[int, dict[str, Any]]],
    output: OutputFormat,
) -> int:
    """Run one batch; print or keep its valid outputs, report its failures; return how many
    rows failed."""
    last = offset + len(batch) - 1
    try:
        result = backend.run_batch(batch)
    except (BackendError, ValidationError) as exc:
        typer.echo(f"rows {offset}-{last}: {exc}", err=True)
        return len(batch)
    for failure in result.failures:
        typer.echo(
            f"row {offset + (failure.row or 0)} failed rule '{failure.rule}': {failure.detail} "
            f"(value: {short_repr(failure.value)})",
            err=True,
        )
    for key, missing in missing_output_keys(result.outputs, backend.config.output_keys).items():
        where = ", ".join(str(offset + i) for i in missing)
        typer.echo(
            f"warning: output key {key!r} (in output_keys) missing from rows {where}", err=True
        )
    failed_rows = result.failed_rows
    for i, out in enumerate(result.outputs):
        if i in failed_rows:
            continue
        if output is OutputFormat.jsonl:
            typer.echo(orjson.dumps(out).decode())
        else:
            rows.append((offset + i, out))
    return len(result.failures)


def _print_table(rows: list[tuple[int, dict[str, Any]]]) -> None:
    keys = list(dict.fromkeys(key for _, out in rows for key in out))
    table = Table("row", *keys)
    for index, out in rows:
        table.add_row(str(index), *(_cell(out, key) for key in keys))
    Console().print(table)


def _cell(output: dict[str, Any], key: str) -> str:
    if key not in output:
        return ""
    value = output[key]
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _print_summary(backend: InferenceBackend, records: int, err: Console) -> None:
    stats = backend.profiler.stats()
    table = Table(
        "stage",
        "calls",
        "mean ms",
        "p50 ms",
        "p99 ms",
        title=f"{backend.name} {backend.version}: {records} records",
    )
    for stage, s in stats.items():
        table.add_row(
            stage,
            str(s.count),
            f"{s.mean_s * 1e3:.3f}",
            f"{s.p50_s * 1e3:.3f}",
            f"{s.p99_s * 1e3:.3f}",
        )
    err.print(table)
    total = stats.get("total")
    if total and total.total_s > 0:
        typer.echo(f"{records / total.total_s:,.0f} records/s through the pipeline", err=True)
