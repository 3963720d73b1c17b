"""Validation at upstream Packflow's module path: `InferenceBackendValidator(backend).run(
sample)` is `backend.validate(sample)`. The rules themselves are in `packflow.validation`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packflow.validation import Rule, check_batch, check_inputs, row_failure, row_failures

if TYPE_CHECKING:
    from packflow.backend.base import InferenceBackend

__all__ = [
    "InferenceBackendValidator",
    "Rule",
    "check_batch",
    "check_inputs",
    "row_failure",
    "row_failures",
]


class InferenceBackendValidator:
    """Runs a backend on a sample and checks Packflow's I/O rules (upstream's class)."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend

    def run(self, inputs: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """The backend's outputs for `inputs` (a dict for a dict); raises the first
        `ValidationError` (an `InferenceBackendValidationError`)."""
        return self.backend.validate(inputs)
