"""structlog, configured once for the SDK: level from `PACKFLOW_LOG_LEVEL`, events to stderr,
as JSON lines unless stderr is a terminal (then readable lines); `PACKFLOW_LOG_FORMAT`
(`json` or `console`) decides instead when set. Values bound with `bind_contextvars` (the
runtime binds `replica`) are on every event of the thread, the backend's own included.

An event's exception (`log.exception(...)`, `exc_info=True`) is rendered into its
`exception` field: in JSON its type, message and frames, on the console a rich traceback;
never frame locals. Every event then passes `packflow.redaction.redact_event`: secrets show
as `***`.

Whoever configures structlog first wins: when the runtime (or the user) has already called
`structlog.configure`, the SDK leaves that configuration alone.

A backend's `self.logger` is a `BackendLogger`: it takes structlog's call style
(`info("weights_loaded", n=3)`: an event with fields) and upstream Packflow's loguru style
(`info("loaded {} rows", n)`, `success(...)`, `exception(...)`), and emits structlog events.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from io import StringIO
from typing import Any

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

from packflow.errors import ConfigError
from packflow.redaction import redact_event

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


_EXCEPTION_DICTS = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)


def _exception_dicts(exc_info: Any) -> list[dict[str, Any]]:
    """A traceback's frames, never their local variables (a `settings` local holds
    passwords). Before structlog 24 a frame still carries a `locals: None` key: dropped."""
    stack = _EXCEPTION_DICTS(exc_info)
    for exc in stack:
        for frame in exc.get("frames", ()):
            frame.pop("locals", None)
    return stack


_JSON_TRACEBACK = structlog.processors.ExceptionRenderer(_exception_dicts)


def _console_traceback(exc_info: Any) -> str:
    sio = StringIO()
    try:
        formatter = structlog.dev.RichTracebackFormatter(show_locals=False, color_system=None)
        formatter(sio, exc_info)
    # rich is not installed, or structlog predates RichTracebackFormatter (23.3), whose
    # older rich_traceback would show locals
    except (ModuleNotFoundError, AttributeError):
        structlog.dev.plain_traceback(sio, exc_info)
    return sio.getvalue().strip("\n")


_CONSOLE_TRACEBACK = structlog.processors.ExceptionRenderer(_console_traceback)


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
    # An event's exception is rendered into its `exception` field before secrets are
    # redacted from the event (so a URL's credentials in the message never show), then the
    # event is rendered: JSON gets type, message and frames; the console a rich traceback.
    tracebacks, renderer = (
        (_JSON_TRACEBACK, structlog.processors.JSONRenderer(serializer=_json_dumps))
        if fmt_name == "json"
        else (
            _CONSOLE_TRACEBACK,
            # the exception is a string by then; plain_traceback only keeps structlog < 23
            # from warning that it cannot prettify it
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            tracebacks,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levels[level_name]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


# loguru's levels without a structlog method of their own, and the one they are logged at.
_LEVEL_ALIASES = {"trace": "debug", "success": "info"}
_LEVELS = ("debug", "info", "warning", "error", "critical")


def _format(message: Any, args: tuple[Any, ...], fields: dict[str, Any]) -> str:
    """loguru's message formatting: `str.format` with the positional arguments and the
    keyword arguments (which stay fields as well); a message that names none is as given."""
    text = str(message)
    if not args and (not fields or "{" not in text):
        return text
    try:
        return text.format(*args, **fields)
    except (IndexError, KeyError, ValueError):
        # Braces that are not a format (a JSON snippet): the message, arguments as a field.
        if args:
            fields["args"] = list(args)
        return text


class BackendLogger:
    """A structlog logger that also takes loguru's call style, as upstream Packflow's
    `self.logger` does.

    - `logger.info("weights_loaded", path=p)`: the event `weights_loaded` with field `path`.
    - `logger.info("loaded {} rows in {:.1f} s", n, s)`: the event is the formatted message.
    - `logger.info("user {name}", name="x")`: formatted, and `name` is also a field.
    - `trace`, `debug`, `info`, `success`, `warning`, `error`, `critical`, `exception`,
      `log(level, ...)`; `success` is logged at info level, `trace` at debug level, each
      with a `loguru_level` field naming the level it was called as.
    - `bind(**fields)` returns a logger that adds `fields` to every event.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: FilteringBoundLogger) -> None:
        self._logger = logger

    @property
    def structlog(self) -> FilteringBoundLogger:
        """The structlog logger underneath."""
        return self._logger

    def bind(self, **fields: Any) -> BackendLogger:
        return BackendLogger(self._logger.bind(**fields))

    def log(self, level: str | int, message: Any, *args: Any, **fields: Any) -> None:
        """Log at `level`: a name (loguru's or the standard library's) or a number."""
        if isinstance(level, int):
            name = logging.getLevelName(level).lower()
        else:
            name = level.lower()
        if name in _LEVEL_ALIASES:
            fields.setdefault("loguru_level", name.upper())
            name = _LEVEL_ALIASES[name]
        if name not in _LEVELS:
            name = "info"
        getattr(self._logger, name)(_format(message, args, fields), **fields)

    def trace(self, message: Any, *args: Any, **fields: Any) -> None:
        self.log("trace", message, *args, **fields)

    def debug(self, message: Any, *args: Any, **fields: Any) -> None:
        self._logger.debug(_format(message, args, fields), **fields)

    def info(self, message: Any, *args: Any, **fields: Any) -> None:
        self._logger.info(_format(message, args, fields), **fields)

    def success(self, message: Any, *args: Any, **fields: Any) -> None:
        self.log("success", message, *args, **fields)

    def warning(self, message: Any, *args: Any, **fields: Any) -> None:
        self._logger.warning(_format(message, args, fields), **fields)

    def error(self, message: Any, *args: Any, **fields: Any) -> None:
        self._logger.error(_format(message, args, fields), **fields)

    def critical(self, message: Any, *args: Any, **fields: Any) -> None:
        self._logger.critical(_format(message, args, fields), **fields)

    def exception(self, message: Any, *args: Any, **fields: Any) -> None:
        """An error event with the exception being handled, its traceback as the field
        `exception`."""
        if sys.exc_info()[0] is not None:
            fields.setdefault("exception", traceback.format_exc().rstrip())
        self._logger.error(_format(message, args, fields), **fields)

    warn = warning

    def __repr__(self) -> str:
        return f"BackendLogger({self._logger!r})"


def get_backend_logger(**initial_values: Any) -> BackendLogger:
    """A `BackendLogger` carrying `initial_values` on every event."""
    return BackendLogger(get_logger(**initial_values))


def get_logger(**initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger carrying `initial_values` on every event (for example `backend=`).

    The logger is lazy: it follows the configuration current at each call, so tests can
    capture its events with `structlog.testing.capture_logs`.
    """
    configure_logging()
    logger: FilteringBoundLogger = structlog.get_logger(**initial_values)
    return logger
