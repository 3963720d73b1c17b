"""`InferenceBackend`: the class a backend author subclasses.

A call runs the pipeline on a batch of records:

    preprocess (config.input_format) -> transform_inputs -> execute -> transform_outputs

`execute` is required; a transform a subclass does not define passes its input through (and
is not timed). `initialize()` runs once, when the backend is constructed.

Three ways to run it:

- `backend(data)`: a dict gives a dict, a list of dicts a list of the same length.
- `backend.run_batch(records)`: what the runtime calls. It also validates each output row
  and returns the outputs with the rows that failed (`BatchResult`), so that only those rows
  become dead letters.
- `backend.validate(sample)` / `backend.check_io(sample)`: for authors and tests; they raise
  the first `ValidationError`.

`run_batch` is `complete(prepare(records))`: `prepare` runs the host stages (preprocess,
transform_inputs), `complete` the rest (execute, transform_outputs, validation). The runtime
may call them on two threads, so that the next batch is prepared on the host while the
current one executes on an accelerator (`packflow run --overlap`). Outputs returned as
`packflow.validation.ArrayRows` stay arrays from `complete`, for the runtime to publish;
`run_batch` and a plain call give them as lists.

Every call is timed per stage into `backend.profiler` (see `packflow.profiling`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from packflow import validation
from packflow.backend.metrics import ExecutionMetrics, ExecutionTimes
from packflow.config import BackendConfig, resolve_config
from packflow.errors import (
    BackendError,
    InferenceBackendInitializationError,
    InferenceBackendRuntimeError,
    ValidationError,
)
from packflow.logging import BackendLogger, get_backend_logger
from packflow.preprocessors import get_preprocessor
from packflow.profiling import Profiler

Stage = tuple[str, Callable[[Any], Any]]


def _plain(outputs: list[Any]) -> list[Any]:
    """`ArrayRows` as plain lists; any other outputs as they are."""
    return outputs.tolist() if isinstance(outputs, validation.ArrayRows) else outputs


class OutputKeysWarning(UserWarning):
    """`check_io` found output rows without a key the config declares in `output_keys`."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of `run_batch`: `outputs[i]` answers input row `i`; `failures` holds one
    `ValidationError` per output row that must not be published, in row order."""

    outputs: list[Any]
    failures: list[ValidationError]

    @property
    def failed_rows(self) -> frozenset[int]:
        """Indexes of the rows in `failures`."""
        return frozenset(f.row for f in self.failures if f.row is not None)

    @property
    def ok(self) -> bool:
        """True when every row passed validation."""
        return not self.failures


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch through the host stages (preprocess, transform_inputs): `data` is what
    `execute` takes. Made by `prepare`, consumed by `complete`."""

    size: int
    data: Any
    timings: dict[str, float]
    host_s: float


class InferenceBackend:
    """Base class of every backend: define `execute`, optionally `initialize`,
    `transform_inputs` and `transform_outputs`.

    Class attributes a subclass may set:

    - `backend_config_model`: its `BackendConfig` subclass (or an instance, whose values
      become defaults); read as `self.config`.
    - `name`: the name in logs, metrics and results (default: the class name).
    - `version`: the version results carry (default "0"; a project loader uses the
      project's version when the class sets none).

    Construction (`MyBackend(**config)`) validates the config (`ConfigError` names each bad
    field), builds the preprocessor, and runs `initialize()` once.
    """

    backend_config_model: ClassVar[type[BackendConfig] | BackendConfig] = BackendConfig
    name: str = "InferenceBackend"
    version: str = "0"

    config: BackendConfig
    logger: BackendLogger
    profiler: Profiler

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, **config: Any) -> None:
        if type(self).execute is InferenceBackend.execute:
            raise BackendError(
                f"{type(self).__name__} does not define execute(); an InferenceBackend subclass "
                "must define execute(self, inputs) returning the model's outputs",
                backend=self.name,
            )
        self.config = resolve_config(self.backend_config_model, config, subject=self.name)
        self.logger = get_backend_logger(backend=self.name)
        self.profiler = Profiler()
        self._last_batch_size = 0
        # Host stages (`prepare`), then device stages (`complete`); execute always runs.
        self._host_stages: list[Stage] = [("preprocess", get_preprocessor(self.config))]
        self._device_stages: list[Stage] = []
        for stage in ("transform_inputs", "execute", "transform_outputs"):
            if stage == "execute" or getattr(type(self), stage) is not getattr(
                InferenceBackend, stage
            ):
                side = self._host_stages if stage == "transform_inputs" else self._device_stages
                side.append((stage, getattr(self, stage)))
        self._initialize()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, {self.config!r})"
        )

    # -- the methods a subclass defines ------------------------------------------------------

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """One-time set-up (load weights, move a model to a device); runs at construction,
        called without arguments."""

    def transform_inputs(self, inputs: Any) -> Any:
        """Turn the preprocessed batch into model-ready features (optional)."""
        return inputs

    def execute(self, inputs: Any) -> Any:
        """Run the model on the features; required."""
        raise NotImplementedError

    def transform_outputs(self, outputs: Any) -> Any:
        """Turn the model's outputs into one JSON-serializable dict per row (optional)."""
        return outputs

    def ready(self) -> bool:
        """Whether the backend can take requests; override for readiness that can change."""
        return True

    # -- running the pipeline ----------------------------------------------------------------

    def __call__(self, inputs: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Run the pipeline: a dict in gives a dict out, a list of dicts a list of the same
        length. Rows are not validated here (see `validate` and `run_batch`)."""
        prepared = self.prepare(validation.check_inputs(inputs))
        started = time.perf_counter()
        outputs = _plain(self._complete(prepared))
        self._finish(prepared, started)
        return outputs[0] if isinstance(inputs, dict) else outputs

    def run_batch(self, records: list[dict[str, Any]]) -> BatchResult:
        """Run the pipeline on a batch and validate every output row.

        Returns a `BatchResult`: the outputs, aligned with `records`, and one
        `ValidationError` per row that broke a row rule. Raises `ValidationError` when the
        batch as a whole is wrong (an input row that is not a dict, outputs that are not a
        list of the batch's length) and `BackendError` when a stage raises: in both cases no
        row can be blamed, and the caller may retry the rows one at a time.

        Outputs returned as `ArrayRows` come back as plain lists (`tolist()`); `complete`
        keeps the arrays, for the runtime to publish from their buffers.
        """
        result = self.complete(self.prepare(records))
        return BatchResult(_plain(result.outputs), result.failures)

    def prepare(self, records: list[dict[str, Any]]) -> PreparedBatch:
        """The host stages of `run_batch` (preprocess, transform_inputs); raises as it does."""
        records = validation.check_inputs(records)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        # An empty batch has nothing to answer: user code never sees one.
        data = self._run(self._host_stages, records, timings) if records else []
        return PreparedBatch(len(records), data, timings, time.perf_counter() - started)

    def complete(self, prepared: PreparedBatch) -> BatchResult:
        """The rest of `run_batch` on a prepared batch: execute, transform_outputs, and the
        validation of every output row."""
        started = time.perf_counter()
        outputs = self._complete(prepared)
        checked = time.perf_counter()
        failures = validation.row_failures(outputs)
        prepared.timings["validate"] = time.perf_counter() - checked
        self._finish(prepared, started)
        return BatchResult(outputs, failures)

    def validate(self, inputs: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Run the pipeline on a sample and check every validation rule.

        Returns the outputs (a dict for a dict); raises the first `ValidationError`, which
        names the row, the rule and the offending value.
        """
        result = self.run_batch(validation.check_inputs(inputs))
        if result.failures:
            raise result.failures[0]
        return result.outputs[0] if isinstance(inputs, dict) else result.outputs

    def check_io(self, inputs: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """`validate`, and warn (`OutputKeysWarning`) about each key declared in the config's
        `output_keys` that some output rows lack. Returns the outputs."""
        outputs = self.validate(inputs)
        rows = [outputs] if isinstance(inputs, dict) else outputs
        for key, missing in validation.missing_output_keys(rows, self.config.output_keys).items():
            warnings.warn(
                f"output key {key!r} (declared in output_keys) is missing from rows {missing}",
                OutputKeysWarning,
                stacklevel=2,
            )
        return outputs

    def get_metrics(self) -> ExecutionMetrics:
        """Per-stage timings of the most recent call, in milliseconds:
        `get_metrics().execution_times.execute`, or `["execute"]`."""
        times = {stage: s * 1000 for stage, s in self.profiler.last.items() if stage != "total"}
        total = self.profiler.last.get("total", 0.0) * 1000
        return ExecutionMetrics(self._last_batch_size, ExecutionTimes(times), total)

    def _complete(self, prepared: PreparedBatch) -> list[Any]:
        if not prepared.size:
            return []
        outputs = self._run(self._device_stages, prepared.data, prepared.timings)
        return validation.check_batch(prepared.size, outputs)

    def _run(self, stages: list[Stage], data: Any, timings: dict[str, float]) -> Any:
        for stage, step in stages:
            started = time.perf_counter()
            try:
                data = step(data)
            except BackendError as exc:
                exc.backend = exc.backend or self.name
                raise
            except Exception as exc:
                raise InferenceBackendRuntimeError(
                    f"{self.name}.{stage}() failed: {type(exc).__name__}: {exc}",
                    backend=self.name,
                    stage=stage,
                ) from exc
            timings[stage] = time.perf_counter() - started
        return data

    def _finish(self, prepared: PreparedBatch, completing_since: float) -> None:
        # Busy time on both sides; time spent waiting between prepare and complete is not.
        timings, batch_size = prepared.timings, prepared.size
        timings["total"] = prepared.host_s + time.perf_counter() - completing_since
        self.profiler.record(timings)
        self._last_batch_size = batch_size
        if self.config.verbose:
            self.logger.info(
                "backend_call",
                batch_size=batch_size,
                **{f"{stage}_ms": round(s * 1000, 4) for stage, s in timings.items()},
            )

    def _initialize(self) -> None:
        started = time.perf_counter()
        try:
            self.initialize()
        except Exception as exc:
            raise InferenceBackendInitializationError(
                f"{self.name}.initialize() failed: {type(exc).__name__}: {exc}",
                backend=self.name,
            ) from exc
        self.logger.info(
            "backend_initialized",
            seconds=round(time.perf_counter() - started, 6),
            pid=os.getpid(),  # which process: one per replica
        )
