"""librdkafka's own log lines, as structlog events: one format on stderr (JSON lines for log
shippers), with the replica bound like every other event.

librdkafka hands its logs to a Python `logging.Logger` given as the client's `logger`
setting, on the thread that polls the client; the handler here re-emits each record as a
`librdkafka` event with its facility and message.
"""

from __future__ import annotations

import logging

from packflow.logging import get_logger

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


class _ToStructlog(logging.Handler):
    def __init__(self, client: str) -> None:
        super().__init__()
        self.log = get_logger(client=client)

    def emit(self, record: logging.LogRecord) -> None:
        # librdkafka's message is "FAC [thrd:...]: text"; the facility is in record.args.
        level = _LEVELS.get(record.levelno, "error")
        getattr(self.log, level)("librdkafka", message=record.getMessage())


def kafka_logger(client: str) -> logging.Logger:
    """A logger to pass as a librdkafka client's `logger`: its lines become events."""
    logger = logging.getLogger(f"packflow.librdkafka.{client}")
    if not logger.handlers:
        logger.addHandler(_ToStructlog(client))
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return logger
