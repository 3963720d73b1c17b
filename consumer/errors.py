"""Errors of the Kafka runtime, under the SDK's single root `PackflowError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packflow.errors import PackflowError

if TYPE_CHECKING:
    from .dlq import DeadLetter


class SettingsWarning(UserWarning):
    """A setting that is ignored or deprecated: a `PACKFLOW_*` variable that names no
    setting, or an old name. The command line shows each as one `packflow: warning:` line."""


class BrokerError(PackflowError):
    """The local Kafka broker could not be fetched, started, reached or stopped.

    The message is one line a person can act on; `detail` holds extra lines (a log tail).
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class TopicError(PackflowError):
    """A topic could not be created or described."""


class AclError(PackflowError):
    """ACLs could not be created (`packflow acls --apply`)."""


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


class DeliveryError(TopicError):
    """Records the broker did not acknowledge: a failed delivery, or a flush that ran out of
    time. `errors` holds librdkafka's reasons (the first few)."""

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class PredictionFailed(PackflowError):
    """A record of `predict()` became a dead letter: `stage` (decode, preprocess, backend,
    validate, encode, publish, crash, timeout), `error_type` and `error_message` say why, as
    the dead letter's headers do; `dead_letter` is the dead letter itself."""

    def __init__(
        self,
        key: str,
        *,
        stage: str,
        error_type: str,
        error_message: str,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        super().__init__(f"record {key!r} failed at stage {stage}: {error_type}: {error_message}")
        self.key = key
        self.stage = stage
        self.error_type = error_type
        self.error_message = error_message
        self.dead_letter = dead_letter


class PredictionTimeout(PackflowError, TimeoutError):
    """`predict()` waited `timeout_s` and some records had neither a result nor a dead letter:
    `pending` names their keys, in the order they were given."""

    def __init__(self, pending: tuple[str, ...], timeout_s: float) -> None:
        shown = ", ".join(repr(k) for k in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        super().__init__(
            f"no result after {timeout_s:g} s for {len(pending)} record(s): {shown}{more}"
        )
        self.pending = pending
        self.timeout_s = timeout_s
