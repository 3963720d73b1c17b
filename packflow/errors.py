"""Packflow's error root. Every error Packflow raises on purpose is a `PackflowError`.

The SDK's errors carry the context a caller acts on as attributes (the config field, the row,
the validation rule, the pipeline stage), and the same facts in their one-line message.

Upstream Packflow's seven exception classes (`packflow.exceptions`) are part of this one
family, so that `except InferenceBackendValidationError` catches what `validate()` raises:

    PackflowError
    +-- ConfigError
    |   +-- PreprocessorInitError        a preprocessor cannot work with the config
    |   +-- UnknownPreprocessorError     no preprocessor of that input_format
    +-- BackendError
    |   +-- InferenceBackendInitializationError   initialize() raised
    |   +-- InferenceBackendRuntimeError          a pipeline stage raised
    |       +-- PreprocessorRuntimeError          the preprocess stage failed
    |           +-- PreprocessError               ... for one record (row, field)
    +-- InferenceBackendValidationError
    |   +-- ValidationError               a validation rule failed (rule, row, value)
    +-- InferenceBackendLoadError
    |   +-- LoaderError
    +-- ProjectError, SampleError

Each upstream class can be raised with one message, as upstream's are.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

# Offending values can be whole records or arrays: keep messages one readable line.
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlist = _short.maxdict = 6


def short_repr(value: Any) -> str:
    """`repr(value)`, shortened so that a message stays one readable line."""
    return _short.repr(value)


class PackflowError(Exception):
    """Root of all Packflow errors; the SDK and the runtime subclass it."""


class ConfigError(PackflowError):
    """A backend configuration (or a setting) is invalid.

    `problems` holds `(field, what is wrong)` pairs, one per invalid field; `subject` names
    what was being configured (a backend and its config model, or an input format). A plain
    message instead of `problems` is the whole message (no field is named).
    """

    def __init__(
        self, problems: Sequence[tuple[str, str]] | str, *, subject: str = "config"
    ) -> None:
        self.subject = subject
        if isinstance(problems, str):
            self.problems: tuple[tuple[str, str], ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        detail = "; ".join(f"{field}: {problem}" for field, problem in self.problems)
        super().__init__(f"invalid config for {subject}: {detail}")

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the invalid fields, in the order they were reported."""
        return tuple(field for field, _ in self.problems)


class BackendError(PackflowError):
    """A backend is defined wrongly, or one stage of its pipeline raised.

    `backend` is the backend's name; `stage` is the pipeline stage that failed (`initialize`,
    `preprocess`, `transform_inputs`, `execute`, `transform_outputs`), or None when the class
    itself is wrong. The exception a stage raised is chained as `__cause__`.
    """

    def __init__(self, message: str, *, backend: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.backend = backend
        self.stage = stage


class PermanentError(PackflowError):
    """Raised by a backend for input it can never handle: the runtime skips its retries and
    dead-letters the record at once (a batch that raised it is still split, so only the bad
    records are dead letters). Anything else a backend raises is retried with backoff."""


class PreprocessorInitError(ConfigError):
    """A preprocessor cannot work with the backend's config (upstream's name; for example
    `input_format: numpy` without `feature_names`)."""


class UnknownPreprocessorError(ConfigError):
    """The config's `input_format` names no registered preprocessor (upstream's name)."""


class InferenceBackendInitializationError(BackendError):
    """The backend's `initialize()` raised (upstream's name); the cause is chained."""

    def __init__(self, message: str, *, backend: str | None = None, stage: str = "initialize"):
        super().__init__(message, backend=backend, stage=stage)


class InferenceBackendRuntimeError(BackendError):
    """A stage of the backend's pipeline raised (upstream's name); `stage` names it and the
    cause is chained."""


class PreprocessorRuntimeError(InferenceBackendRuntimeError):
    """The preprocess stage could not turn the batch into the backend's input (upstream's
    name)."""

    def __init__(self, message: str, *, backend: str | None = None, stage: str = "preprocess"):
        super().__init__(message, backend=backend, stage=stage)


class PreprocessError(PreprocessorRuntimeError):
    """The configured preprocessor could not turn a record into the backend's input.

    `row` is the index of the record in its batch and `field` the field it lacked or that held
    an unusable value.
    """

    def __init__(self, message: str, *, row: int, field: str | None = None) -> None:
        super().__init__(f"record {row}: {message}")
        self.row = row
        self.field = field


class InferenceBackendValidationError(PackflowError):
    """A backend's input or output broke Packflow's I/O rules (upstream's name). Packflow
    raises its subclass `ValidationError`, which names the rule, the row and the value."""


class ValidationError(InferenceBackendValidationError):
    """A pipeline's input or output broke one of Packflow's validation rules.

    `rule` names the rule (see `packflow.validation.Rule`), `row` the index of the offending
    row in its batch (None when the batch as a whole is wrong, for example its length) and
    `value` the offending value itself.
    """

    def __init__(self, detail: str, *, rule: str, row: int | None = None, value: Any = None):
        self.detail = detail
        self.rule = str(rule)
        self.row = row
        self.value = value
        where = "batch" if row is None else f"row {row}"
        super().__init__(
            f"{where} failed rule '{self.rule}': {detail} (value: {short_repr(value)})"
        )


class InferenceBackendLoadError(PackflowError):
    """A backend could not be loaded (upstream's name); Packflow raises `LoaderError`."""


class LoaderError(InferenceBackendLoadError):
    """A backend could not be found, imported or constructed from a reference or project."""


class ProjectError(PackflowError):
    """A Packflow project could not be created, read or exported."""


class SampleError(PackflowError):
    """A sample file is missing or holds something other than records."""
