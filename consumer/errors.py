"""Errors of the Kafka runtime, under the SDK's single root `PackflowError`."""

from __future__ import annotations

from packflow.errors import PackflowError


class BrokerError(PackflowError):
    """The local Kafka broker could not be fetched, started, reached or stopped.

    The message is one line a person can act on; `detail` holds extra lines (a log tail).
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class TopicError(PackflowError):
    """A topic could not be created or described."""


class SchemaError(PackflowError):
    """An Avro schema could not be found or parsed."""
