"""Preprocessors: the first stage of every pipeline, chosen by the config's `input_format`.

A preprocessor is a callable over a batch, `(records: list[dict]) -> Any`, built once per
backend from its config by a factory registered under a name. The shipped ones are
subclasses of `Preprocessor` (upstream's base class: `resolve()` checks the config,
`process(records)` does the work):

- `passthrough` (`PassthroughPreprocessor`): the records, untouched.
- `records` (default, `RecordsPreprocessor`): flatten nested fields, rename fields, then
  keep the renamed fields and `feature_names` in their order. A field that is missing or
  null is left out of the output record.
- `numpy` (`NumpyPreprocessor`): a 2-D array, one row per record and one column per feature
  in `feature_names` order. A record that lacks a feature (or holds null for it) is an
  error naming both.

Field references may be nested paths (`"user.age"` with the default delimiter): a literal key
of that name wins, else the path is followed through nested dicts.

Register another format with `register_preprocessor("name", factory)`, where the factory
takes the backend's `BackendConfig` and returns the callable.

This module knows the config only as the fields it reads (`PreprocessorConfig`), so that
`packflow.config`, which checks `input_format` against the registered names, can import it
and not the other way round.
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable
from itertools import chain
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from packflow.errors import (
    ConfigError,
    PreprocessError,
    PreprocessorInitError,
    PreprocessorRuntimeError,
    UnknownPreprocessorError,
)


class PreprocessorConfig(Protocol):
    """The fields of a backend's config that the shipped preprocessors read; every
    `BackendConfig` has them (a registered factory may read its subclass's own fields)."""

    @property
    def input_format(self) -> str: ...
    @property
    def rename_fields(self) -> dict[str, str]: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def flatten_nested_inputs(self) -> bool: ...
    @property
    def flatten_lists(self) -> bool: ...
    @property
    def nested_field_delimiter(self) -> str: ...


Records = list[dict[str, Any]]
PreprocessorFn = Callable[[Records], Any]
PreprocessorFactory = Callable[[PreprocessorConfig], PreprocessorFn]
F = TypeVar("F", bound=PreprocessorFactory)

_MISSING: Any = object()
_REGISTRY: dict[str, PreprocessorFactory] = {}


@overload
def register_preprocessor(name: str, factory: F, *, replace: bool = False) -> F: ...
@overload
def register_preprocessor(
    name: str, factory: None = None, *, replace: bool = False
) -> Callable[[F], F]: ...
def register_preprocessor(
    name: str, factory: F | None = None, *, replace: bool = False
) -> F | Callable[[F], F]:
    """Register `factory` as the preprocessor of `input_format: <name>`.

    `factory(config)` returns the callable applied to each batch; a class whose `__init__`
    takes the config and whose instances are callable fits. Use as a call or as a class or
    function decorator. Registering a taken name needs `replace=True`.
    """

    def add(f: F) -> F:
        if not name or not isinstance(name, str):
            raise ConfigError(
                [("input_format", f"{name!r} is not a name")], subject="register_preprocessor"
            )
        if name in _REGISTRY and not replace:
            raise ConfigError(
                [("input_format", f"{name!r} is already registered; pass replace=True")],
                subject="register_preprocessor",
            )
        _REGISTRY[name] = f
        return f

    return add if factory is None else add(factory)


def input_formats() -> tuple[str, ...]:
    """The registered input format names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_preprocessor(config: PreprocessorConfig) -> PreprocessorFn:
    """Build the preprocessor of `config.input_format` for `config`."""
    factory = _REGISTRY.get(config.input_format)
    if factory is None:
        known = ", ".join(input_formats())
        raise UnknownPreprocessorError(
            [("input_format", f"unknown input format {config.input_format!r}; known: {known}")],
            subject="preprocessor",
        )
    return factory(config)


def flatten_record(record: dict[str, Any], delimiter: str, flatten_lists: bool) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists too (`"a.0"`) when `flatten_lists`.

    Empty dicts and lists stay as values, so no field disappears.
    """
    flat: dict[str, Any] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{key}{delimiter}{k}", v)
        elif flatten_lists and isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(f"{key}{delimiter}{i}", v)
        else:
            flat[key] = value

    for k, v in record.items():
        walk(str(k), v)
    return flat


def _getter(ref: str, delimiter: str, nested: bool) -> Callable[[dict[str, Any]], Any]:
    """A function returning `ref`'s value in a record, or `_MISSING`."""
    if not nested or delimiter not in ref:
        return lambda record: record.get(ref, _MISSING)
    parts = ref.split(delimiter)

    def get(record: dict[str, Any]) -> Any:
        if ref in record:
            return record[ref]
        value: Any = record
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    return get


def _setter(key: str, delimiter: str, nested: bool) -> Callable[[dict[str, Any], Any], None]:
    """A function storing a value under `key` in an output record, as nested dicts when
    `key` is a path (so `feature_names: ["a.b"]` keeps `{"a": {"b": ...}}`)."""
    if not nested or delimiter not in key:
        return lambda out, value: out.__setitem__(key, value)
    *parents, leaf = key.split(delimiter)

    def put(out: dict[str, Any], value: Any) -> None:
        for part in parents:
            out = out.setdefault(part, {})
        out[leaf] = value

    return put


class Preprocessor(abc.ABC):
    """Base class of a preprocessor over a batch of records (upstream's API).

    A subclass defines `resolve()`, which checks the config (`self.config`) once, at
    construction, and `process(records)`, which turns a batch into the backend's input.
    Calling the preprocessor runs `process`; an exception it raises reaches the caller as a
    `PreprocessorRuntimeError` (a `PreprocessError` naming the record passes as it is).
    Register a subclass as an input format with `register_preprocessor(name, Subclass)`.
    """

    def __init__(self, config: PreprocessorConfig) -> None:
        self.config = config
        self.resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def __call__(self, raw_inputs: Records) -> Any:
        try:
            return self.process(raw_inputs)
        except PreprocessorRuntimeError:
            raise
        except Exception as exc:
            raise PreprocessorRuntimeError(
                f"failed to preprocess inputs: {type(exc).__name__}: {exc}"
            ) from exc

    @abc.abstractmethod
    def resolve(self) -> None:
        """Check the config for what this preprocessor needs; raise `PreprocessorInitError`
        (a `ConfigError`) when it cannot work with it."""

    @abc.abstractmethod
    def process(self, raw_inputs: Records) -> Any:
        """The backend's input for a batch of records."""


class PassthroughPreprocessor(Preprocessor):
    """`input_format: passthrough`: the batch, untouched (the very list)."""

    def resolve(self) -> None:
        return None

    def process(self, raw_inputs: Records) -> Records:
        return raw_inputs

    def __call__(self, raw_inputs: Records) -> Records:
        return raw_inputs  # nothing can fail: skip the error wrapping


def delimiter_collisions(record: dict[str, Any], delimiter: str, path: str = "") -> list[str]:
    """The paths of the keys in `record` (nested dicts included) that contain `delimiter`."""
    found = []
    for key, value in record.items():
        here = f"{path}{delimiter}{key}" if path else str(key)
        if delimiter in str(key):
            found.append(here)
        if isinstance(value, dict):
            found.extend(delimiter_collisions(value, delimiter, here))
    return found


class RecordsPreprocessor(Preprocessor):
    """`input_format: records`: flatten, rename, then select and order `feature_names`.

    With `feature_names`, an output record holds the renamed fields and then the features
    not already among them, in order; a field that is missing or null is left out. With none
    of flattening, renaming and selection configured it returns the batch itself (no copy).
    When `feature_names` or `rename_fields` use nested paths on unflattened records, a
    record with a key that contains the delimiter is ambiguous and fails (a
    `PreprocessError`), unless `ignore_delimiter_collisions`.
    """

    def resolve(self) -> None:
        config = self.config
        self.delimiter = config.nested_field_delimiter
        self.flatten = config.flatten_nested_inputs
        self.flatten_lists = config.flatten_lists
        self.rename = dict(config.rename_fields)
        self.features = list(config.feature_names)
        self.passthrough = not (self.rename or self.features or self.flatten)
        # Paths are followed through nested dicts only when records are not flattened.
        nested = not self.flatten
        d = self.delimiter
        renames = [
            (_getter(old, d, nested), _setter(new, d, nested)) for old, new in self.rename.items()
        ]
        renamed_to = set(self.rename.values())
        features = [
            (_getter(f, d, nested), _setter(f, d, nested))
            for f in self.features
            if f not in renamed_to
        ]
        self._select = renames + features
        self._nested_renames = [
            (_getter(old, d, True), _setter(new, d, True))
            for old, new in self.rename.items()
            if nested and d in old
        ]
        self.check_collisions = (
            nested
            and not getattr(config, "ignore_delimiter_collisions", False)
            and any(d in ref for ref in [*self.rename, *self.features])
        )

    def __call__(self, raw_inputs: Records) -> Records:
        if self.passthrough:
            return raw_inputs
        return super().__call__(raw_inputs)  # type: ignore[no-any-return]

    def process(self, raw_inputs: Records) -> Records:
        records = raw_inputs
        if self.passthrough:
            return records
        if self.check_collisions:
            for row, record in enumerate(records):
                self._check_collisions(row, record)
        if self.flatten:
            records = [flatten_record(r, self.delimiter, self.flatten_lists) for r in records]
        if self.features:
            return [self._pick(r) for r in records]
        return [self._renamed(r) for r in records]

    def _check_collisions(self, row: int, record: Any) -> None:
        if not isinstance(record, dict):
            return
        found = delimiter_collisions(record, self.delimiter)
        if found:
            raise PreprocessError(
                f"keys {found} contain the delimiter {self.delimiter!r}, which makes the "
                "nested paths in feature_names/rename_fields ambiguous; rename those keys, "
                "choose another nested_field_delimiter, or set ignore_delimiter_collisions",
                row=row,
                field=found[0],
            )

    def _pick(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for get, put in self._select:
            value = get(record)
            if value is not _MISSING and value is not None:
                put(out, value)
        return out

    def _renamed(self, record: dict[str, Any]) -> dict[str, Any]:
        rename = self.rename
        out = {rename.get(k, k): v for k, v in record.items()}
        for get, put in self._nested_renames:
            value = get(record)
            if value is not _MISSING:
                put(out, value)
        return out


class NumpyPreprocessor(Preprocessor):
    """`input_format: numpy`: a 2-D array with one column per feature, in `feature_names`
    order (`rename_fields` maps a record's names to those feature names).

    Records of floats take a fast path (one `np.fromiter` over every value); anything else
    is built row by row, and a missing or null feature raises a `PreprocessError` naming
    the record's index and the field.
    """

    def resolve(self) -> None:
        config = self.config
        if not config.feature_names:
            problem = "input_format 'numpy' needs feature_names to choose the array's columns"
            raise PreprocessorInitError(
                [("feature_names", problem)], subject="input_format 'numpy'"
            )
        self.delimiter = config.nested_field_delimiter
        self.flatten = config.flatten_nested_inputs
        self.flatten_lists = config.flatten_lists
        self.features = list(config.feature_names)
        old_name = {new: old for old, new in config.rename_fields.items()}
        self.sources = [old_name.get(f, f) for f in self.features]
        nested = not self.flatten
        self._getters = [_getter(s, self.delimiter, nested) for s in self.sources]
        simple = not self.flatten and all(self.delimiter not in s for s in self.sources)
        # itemgetter of one key returns the value itself, of several a tuple of them.
        self._pick: Callable[[dict[str, Any]], Any] | None = (
            operator.itemgetter(*self.sources) if simple else None
        )

    def __call__(self, raw_inputs: Records) -> np.ndarray[Any, Any]:
        return self.process(raw_inputs)  # raises only PreprocessError, naming the record

    def process(self, raw_inputs: Records) -> np.ndarray[Any, Any]:
        records = raw_inputs
        if self._pick is not None and records:
            try:
                if all(type(records[0][s]) is float for s in self.sources):
                    array = self._float_array(self._pick, records)
                    # fromiter reads null as NaN: only the row path tells a null from a NaN.
                    if not np.isnan(array).any():
                        return array
            except (KeyError, TypeError, ValueError):
                pass  # a missing or non-numeric value: the row path names the record
        return np.array([self._row(i, r) for i, r in enumerate(records)])

    def _float_array(
        self, pick: Callable[[dict[str, Any]], Any], records: Records
    ) -> np.ndarray[Any, Any]:
        # One flat np.fromiter over all values is the fastest conversion of float records.
        n, k = len(records), len(self.sources)
        values = map(pick, records) if k == 1 else chain.from_iterable(map(pick, records))
        return np.fromiter(values, np.float64, n * k).reshape(n, k)

    def _row(self, index: int, record: Any) -> list[Any]:
        if not isinstance(record, dict):
            raise PreprocessError(f"is {type(record).__name__}, not a dict", row=index)
        if self.flatten:
            record = flatten_record(record, self.delimiter, self.flatten_lists)
        row = []
        for feature, source, get in zip(self.features, self.sources, self._getters, strict=True):
            value = get(record)
            if value is _MISSING or value is None:
                what = "has no field" if value is _MISSING else "holds null for field"
                named = "" if feature == source else f" (feature {feature!r})"
                raise PreprocessError(f"{what} {source!r}{named}", row=index, field=source)
            row.append(value)
        return row


register_preprocessor("passthrough", PassthroughPreprocessor)
register_preprocessor("records", RecordsPreprocessor)
register_preprocessor("numpy", NumpyPreprocessor)
