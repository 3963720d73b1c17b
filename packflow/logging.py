"""structlog, configured once for the SDK: level from `PACKFLOW_LOG_LEVEL`, events to stderr,
as JSON lines unless stderr is a terminal (then readable lines); `PACKFLOW_LOG_FORMAT`
(`json` or `console`) decides instead when set. Values bound with `bind_contextvars` (the
runtime binds `replica`) are on every event of the thread, the backend's own included.

Whoever configures structlog first wins: when the runtime (or the user) has already called
`structlog.configure`, the SDK leaves that configuration alone.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

from packflow.errors import ConfigError

LEVEL_ENV = "PACKFLOW_LOG_LEVEL"
FORMAT_ENV = "PACKFLOW_LOG_FORMAT"


def _json_dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def _stderr_logger(*_: Any) -> structlog.WriteLogger:
    # Resolved per logger, not once: the stream follows sys.stderr when it is replaced
    # (pytest capture, CLI test runners) instead of writing to a closed one.
    # WriteLogger writes each event and its newline in one call: replicas sharing one stderr
    # (a supervisor's, a log file) then never interleave two events on a line, as print does.
    return structlog.WriteLogger(sys.stderr)


def configure_logging(
    level: str | None = None, *, fmt: str | None = None, force: bool = False
) -> None:
    """Configure structlog for Packflow, unless it is configured already (or `force`).

    `level` defaults to `PACKFLOW_LOG_LEVEL` (else INFO); `fmt` is `console` or `json` and
    defaults to `PACKFLOW_LOG_FORMAT` (else console on a terminal, json otherwise). Events
    go to stderr, so that a command's
    stdout holds only its results.
    """
    if structlog.is_configured() and not force:
        return
    level_name = (level or os.environ.get(LEVEL_ENV) or "INFO").upper()
    levels = logging.getLevelNamesMapping()
    if level_name not in levels:
        known = "DEBUG, INFO, WARNING, ERROR, CRITICAL"
        raise ConfigError(
            [(LEVEL_ENV, f"unknown level {level_name!r}; use one of {known}")], subject="logging"
        )
    default = "console" if sys.stderr.isatty() else "json"
    fmt_name = (fmt or os.environ.get(FORMAT_ENV) or default).lower()
    if fmt_name not in ("console", "json"):
        raise ConfigError(
            [(FORMAT_ENV, f"unknown format {fmt_name!r}; use console or json")], subject="logging"
        )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if fmt_name == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levels[level_name]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(**initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger carrying `initial_values` on every event (for example `backend=`).

    The logger is lazy: it follows the configuration current at each call, so tests can
    capture its events with `structlog.testing.capture_logs`.
    """
    configure_logging()
    logger: FilteringBoundLogger = structlog.get_logger(**initial_values)
    return logger
