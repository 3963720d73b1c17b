"""`get_metrics()`'s answer: the per-stage timings of a backend's most recent call.

`ExecutionTimes` reads as upstream's model (`times.execute`, `times.transform_inputs` is
None when the backend does not define it, `times.total()`) and as a mapping of the stages
that ran (`times["execute"]`, `list(times)`, `dict(times)`), in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ExecutionMetrics", "ExecutionTimes"]

# Upstream's four fields, always shown; our `validate` stage only when it ran.
_FIELDS = ("preprocess", "transform_inputs", "execute", "transform_outputs")


class ExecutionTimes(Mapping[str, float]):
    """Milliseconds per pipeline stage of one call; a stage that did not run is absent
    from the mapping and None as an attribute."""

    __slots__ = ("_times",)

    def __init__(self, times: Mapping[str, float] | None = None, **stages: float) -> None:
        self._times = {**(times or {}), **stages}

    @property
    def preprocess(self) -> float | None:
        return self._times.get("preprocess")

    @property
    def transform_inputs(self) -> float | None:
        return self._times.get("transform_inputs")

    @property
    def execute(self) -> float | None:
        return self._times.get("execute")

    @property
    def transform_outputs(self) -> float | None:
        return self._times.get("transform_outputs")

    @property
    def validate(self) -> float | None:
        """Packflow's own stage: the validation of every output row (`run_batch`)."""
        return self._times.get("validate")

    def total(self) -> float:
        """The sum of the stages that ran."""
        return sum(self._times.values())

    def model_dump(self) -> dict[str, float | None]:
        """Upstream's fields (None where a stage did not run), then any other stage."""
        return {**{f: self._times.get(f) for f in _FIELDS}, **self._times}

    def __getitem__(self, stage: str) -> float:
        return self._times[stage]

    def __iter__(self) -> Iterator[str]:
        return iter(self._times)

    def __len__(self) -> int:
        return len(self._times)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExecutionTimes):
            return self._times == other._times
        return isinstance(other, Mapping) and self._times == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"ExecutionTimes({shown})"


@dataclass(frozen=True, slots=True)
class ExecutionMetrics:
    """Timings of the most recent call, in milliseconds per stage; `total_execution_time`
    is the whole call (validation and Packflow's own work included)."""

    batch_size: int
    execution_times: ExecutionTimes
    total_execution_time: float

    def model_dump(self) -> dict[str, Any]:
        """As a dict, as upstream's pydantic model dumps."""
        return {
            "batch_size": self.batch_size,
            "execution_times": self.execution_times.model_dump(),
            "total_execution_time": self.total_execution_time,
        }
