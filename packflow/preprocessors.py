"""Preprocessors: the first stage of every pipeline, chosen by the config's `input_format`.

A preprocessor is a callable over a batch, `(records: list[dict]) -> Any`, built once per
backend from its config by a factory registered under a name:

- `passthrough`: the records, untouched.
- `records` (default): flatten nested fields, rename fields, then keep only `feature_names`
  in their order. A record that lacks a feature simply lacks it in the output.
- `numpy`: a 2-D array, one row per record and one column per feature in `feature_names`
  order. A record that lacks a feature (or holds null for it) is an error naming both.

Field references may be nested paths (`"user.age"` with the default delimiter): a literal key
of that name wins, else the path is followed through nested dicts.

Register another format with `register_preprocessor("name", factory)`, where the factory
takes the backend's `BackendConfig` and returns the callable.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from packflow.errors import ConfigError, PreprocessError

if TYPE_CHECKING:
    from packflow.config import BackendConfig

Records = list[dict[str, Any]]
Preprocessor = Callable[[Records], Any]
PreprocessorFactory = Callable[["BackendConfig"], Preprocessor]
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


def get_preprocessor(config: BackendConfig) -> Preprocessor:
    """Build the preprocessor of `config.input_format` for `config`."""
    factory = _REGISTRY.get(config.input_format)
    if factory is None:
        known = ", ".join(input_formats())
        raise ConfigError(
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


def passthrough(config: BackendConfig) -> Preprocessor:
    """`input_format: passthrough`: the batch, untouched."""
    return _identity


def _identity(records: Records) -> Records:
    return records


class RecordsPreprocessor:
    """`input_format: records`: flatten, rename, then select and order `feature_names`.

    With none of those configured it returns the batch itself (no copy).
    """

    def __init__(self, config: BackendConfig) -> None:
        self.delimiter = config.nested_field_delimiter
        self.flatten = config.flatten_nested_inputs
        self.flatten_lists = config.flatten_lists
        self.rename = dict(config.rename_fields)
        self.features = list(config.feature_names)
        self.passthrough = not (self.rename or self.features or self.flatten)
        # Paths are followed through nested dicts only when records are not flattened.
        nested = not self.flatten
        old_name = {new: old for old, new in self.rename.items()}
        self._select = [
            (
                _getter(old_name.get(f, f), self.delimiter, nested),
                _setter(f, self.delimiter, nested),
            )
            for f in self.features
        ]
        self._nested_renames = [
            (_getter(old, self.delimiter, True), _setter(new, self.delimiter, True))
            for old, new in self.rename.items()
            if nested and self.delimiter in old
        ]

    def __call__(self, records: Records) -> Records:
        if self.passthrough:
            return records
        if self.flatten:
            records = [flatten_record(r, self.delimiter, self.flatten_lists) for r in records]
        if self.features:
            return [self._pick(r) for r in records]
        return [self._renamed(r) for r in records]

    def _pick(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for get, put in self._select:
            value = get(record)
            if value is not _MISSING:
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


class NumpyPreprocessor:
    """`input_format: numpy`: a 2-D array with one column per feature, in `feature_names`
    order (`rename_fields` maps a record's names to those feature names).

    Records of floats take a fast path (one `np.fromiter` over every value); anything else
    is built row by row, and a missing or null feature raises a `PreprocessError` naming
    the record's index and the field.
    """

    def __init__(self, config: BackendConfig) -> None:
        if not config.feature_names:
            problem = "input_format 'numpy' needs feature_names to choose the array's columns"
            raise ConfigError([("feature_names", problem)], subject="input_format 'numpy'")
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

    def __call__(self, records: Records) -> np.ndarray[Any, Any]:
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


register_preprocessor("passthrough", passthrough)
register_preprocessor("records", RecordsPreprocessor)
register_preprocessor("numpy", NumpyPreprocessor)
