"""librdkafka's own log lines, as structlog events: one format on stderr (JSON lines for log
shippers), with the replica bound like every other event.

librdkafka hands its logs to a Python `logging.Logger` given as the client's `logger`
setting, on the thread that polls the client; the handler here re-emits each record as a
`librdkafka` event with its facility and message. Its failures to reach a broker (`FAIL`
lines: refused, DNS, TLS, SASL) go to `on_failure` instead, when one is given: a replica
collapses them into one line (consumer/broker_reach.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from packflow.logging import get_logger

from .broker_reach import failure_text, is_connect_failure

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


class _ToStructlog(logging.Handler):
    def __init__(self, client: str) -> None:
        super().__init__()
        self.log = get_logger(client=client)
        self.on_failure: Callable[[str], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # librdkafka's message is "FAC [thrd:...]: text"; the facility is in record.args.
        message = record.getMessage()
        if self.on_failure is not None and is_connect_failure(message):
            self.on_failure(failure_text(message))
            return
        level = _LEVELS.get(record.levelno, "error")
        getattr(self.log, level)("librdkafka", message=message)


def kafka_logger(client: str, on_failure: Callable[[str], None] | None = None) -> logging.Logger:
    """A logger to pass as a librdkafka client's `logger`: its lines become events, its
    failures to reach a broker calls of `on_failure` (when given)."""
    logger = logging.getLogger(f"packflow.librdkafka.{client}")
    if not logger.handlers:
        logger.addHandler(_ToStructlog(client))
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    for handler in logger.handlers:
        if isinstance(handler, _ToStructlog):
            handler.on_failure = on_failure
    return logger
