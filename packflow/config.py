"""`BackendConfig`, the pydantic model of a backend's configuration, and how it is resolved.

Sources, lowest to highest precedence: the model's defaults (or, when a backend names a
config *instance* as its `backend_config_model`, that instance's values), the
`backend_config:` section of the project's `packflow.yaml` (applied by the loaders), and the
keyword arguments the backend is constructed with. A dict given by two sources merges key by
key; anything else (lists included) is replaced whole, and a given value replaces the
model's default as pydantic does.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from packflow.errors import ConfigError, short_repr
from packflow.preprocessors import input_formats

# `Field` is pydantic's, offered here so that a backend's config model can constrain its
# fields (`threshold: float = Field(0.5, ge=0, le=1)`) importing only the SDK.
__all__ = [
    "BackendConfig",
    "Field",
    "InputFormats",
    "load_backend_configuration",
    "merge_config",
    "resolve_config",
]


class InputFormats(enum.StrEnum):
    """The shipped input formats (upstream's enum). A `StrEnum`: `InputFormats.NUMPY ==
    "numpy"`, so the config takes either, and a registered format is a plain string."""

    PASSTHROUGH = "passthrough"
    RECORDS = "records"
    NUMPY = "numpy"


class BackendConfig(BaseModel):
    """The configuration every backend has; subclass it to add a backend's own fields.

    - `verbose`: log each call's per-stage execution times.
    - `input_format`: the preprocessor: `passthrough`, `records` (default), `numpy`, or a
      name registered with `packflow.preprocessors.register_preprocessor`.
    - `rename_fields`: `{old: new}` field renames, applied before `feature_names`.
    - `feature_names`: the fields to keep, in this order (`records`), or the array's columns
      (`numpy`, required there).
    - `flatten_nested_inputs`, `flatten_lists`, `nested_field_delimiter`: flatten nested
      records into `a.b` (and `a.0` for lists) keys before renaming and selecting.
    - `ignore_delimiter_collisions`: allow record keys that contain the delimiter when
      `feature_names`/`rename_fields` use nested paths (otherwise such a record fails).
    - `output_keys`: the keys every output row is declared to carry (checked by `check_io`).

    Unknown fields are rejected, so a misspelt option fails instead of being ignored.
    """

    model_config = ConfigDict(extra="forbid")

    verbose: bool = False
    input_format: str = InputFormats.RECORDS
    rename_fields: dict[str, str] = {}
    feature_names: list[str] = []
    flatten_nested_inputs: bool = False
    flatten_lists: bool = False
    nested_field_delimiter: str = Field(".", min_length=1)
    ignore_delimiter_collisions: bool = False
    output_keys: list[str] = []

    @field_validator("input_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in input_formats():
            raise ValueError(f"unknown input format {value!r}; known: {', '.join(input_formats())}")
        # The shipped formats as upstream's enum members (equal to their strings).
        return InputFormats(value) if value in InputFormats._value2member_map_ else str(value)

    @field_validator("feature_names", "output_keys")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names repeated: {', '.join(repeated)}")
        return names

    @field_validator("feature_names")
    @classmethod
    def _features_after_rename(cls, names: list[str], info: ValidationInfo) -> list[str]:
        # feature_names are read after renaming: an old name there would always be missing.
        renames: dict[str, str] = info.data.get("rename_fields", {})
        renamed_away = [f for f in names if f in renames and f not in renames.values()]
        if renamed_away:
            hints = ", ".join(f"{f!r} -> {renames[f]!r}" for f in renamed_away)
            raise ValueError(
                f"lists fields that rename_fields renames ({hints}); list their new names"
            )
        return names


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`: nested dicts merge key by key, other values are replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_config(
    model: type[BackendConfig] | BackendConfig,
    overrides: Mapping[str, Any],
    *,
    subject: str,
) -> BackendConfig:
    """Validate `overrides` over `model`'s defaults into a config, or raise `ConfigError`.

    `model` is a `BackendConfig` subclass, or an instance whose values act as the defaults.
    Every invalid field is reported, by name, with what was wrong with it.
    """
    if isinstance(model, BackendConfig):
        base = model.model_dump(exclude_unset=True)
        model_cls: type[BackendConfig] = type(model)
    elif isinstance(model, type) and issubclass(model, BackendConfig):
        base, model_cls = {}, model
    else:
        raise ConfigError(
            [("backend_config_model", f"must be a BackendConfig subclass, got {model!r}")],
            subject=subject,
        )
    try:
        return model_cls.model_validate(merge_config(base, overrides))
    except pydantic.ValidationError as exc:
        known = ", ".join(model_cls.model_fields)
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(config)"
            if error["type"] == "extra_forbidden":
                problem = f"unknown field; the fields of {model_cls.__name__} are: {known}"
            elif error["type"] == "missing":
                problem = "required, but not given"
            elif error["type"] == "value_error":
                problem = str(error["ctx"]["error"])
            else:
                problem = f"{error['msg']} (got {short_repr(error['input'])})"
            problems.append((field, problem))
        raise ConfigError(problems, subject=f"{subject} ({model_cls.__name__})") from None


def load_backend_configuration(
    backend_config_model: type[BackendConfig] | BackendConfig = BackendConfig,
    **backend_kwargs: Any,
) -> BackendConfig:
    """Upstream's name for `resolve_config`: `backend_kwargs` over the model's defaults,
    validated; raises `ConfigError` naming each invalid field."""
    subject = getattr(backend_config_model, "__name__", type(backend_config_model).__name__)
    return resolve_config(backend_config_model, backend_kwargs, subject=subject)
