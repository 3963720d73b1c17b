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


class DecodeError(PackflowError):
    """One message could not be decoded into a record; the decoder returns it in that record's
    place, so its neighbours still decode.

    `reason` says why, for metrics and dead-letter listings: `null` (no value), `framing` (not
    the configured wire format), `unknown-schema` (fingerprint or registry id not known),
    `incompatible` (the writer schema cannot be resolved to the reader schema) or `corrupt`.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class EncodeError(PackflowError):
    """A record or a result could not be encoded; `key` names the result's key, if any."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RegistryError(PackflowError):
    """The Schema Registry could not be reached, or refused a request (other than a lookup of
    an unknown schema id, which is the record's `DecodeError`)."""
