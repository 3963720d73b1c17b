"""Options the commands share: the runtime settings as flags, made from `RuntimeSettings`.

Every settings field `x_y` is the flag `--x-y`, as its environment variable is `PACKFLOW_X_Y`:
`settings_options(...)` gives a command one option per field it names, so that no command
copies a setting by hand. Flags are read by the command line only; the environment, the
project and the defaults are read by `load_settings`, which keeps their precedence.
"""

from __future__ import annotations

import functools
import inspect
import os
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo

from ..settings import RuntimeSettings, env_name

SettingsFlags = dict[str, Any]
"""The settings given as flags, by field name, parsed; a command passes them to
`load_settings(**flags)`. Flags not given are absent."""

# Spellings from before the flags were made from the settings, kept so that scripts, tests
# and documents written with them keep working. `--set` is `packflow check`'s.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "input_schema": ("--schema",),
    "shutdown_timeout_s": ("--shutdown-timeout",),
    "backend_config": ("--config", "--set", "-s"),
    "known_schemas": ("--known-schema",),
}

PANEL = "Settings (flags > PACKFLOW_* environment > packflow.yaml runtime: > defaults)"

Shape = Literal["switch", "pairs", "config", "many", "value"]


def flag_name(field: str) -> str:
    """The flag of a settings field: `input_schema` -> `--input-schema`."""
    return "--" + field.replace("_", "-")


def settings_options(
    *fields: str,
    aliases: Mapping[str, Sequence[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator giving a typer command one option per named settings field (every field
    when none is named), plus `aliases` of its own (`{"input_topic": ["--topic"]}`), and
    `defaults` where the command's differ from the settings' (used when neither the flag nor
    the variable is given). The command takes them as one keyword argument,
    `flags: SettingsFlags`."""
    names = fields or tuple(RuntimeSettings.model_fields)
    unknown = set(names) - set(RuntimeSettings.model_fields)
    if unknown:
        raise TypeError(f"no such settings: {', '.join(sorted(unknown))}")
    more = aliases or {}
    chosen = defaults or {}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        clash = {p.name for p in own} & set(names)
        if clash:
            raise TypeError(f"{command.__name__} has its own {', '.join(sorted(clash))}")
        generated = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_option(
                    name, (*ALIASES.get(name, ()), *more.get(name, ())), chosen.get(name)
                ),
                default=None,
            )
            for name in names
        ]

        @functools.wraps(command)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in names}
            for name, default in chosen.items():
                if given[name] is None and env_name(name) not in os.environ:
                    given[name] = default
            return command(*args, flags=parse_flags(given), **kwargs)

        # typer reads the parameters from the signature: the command's own, then the flags.
        with_settings.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *generated]
        )
        return with_settings

    return decorate


def parse_flags(given: Mapping[str, Any]) -> SettingsFlags:
    """Raw option values (None: not given) as settings values: KEY=VALUE pairs as dicts
    (backend config values read as YAML), repeated options as lists."""
    flags: SettingsFlags = {}
    for name, raw in given.items():
        if raw is None or raw == []:
            continue
        shape = _shape(RuntimeSettings.model_fields[name])
        if shape == "pairs":
            flags[name] = parse_pairs(raw, flag_name(name))
        elif shape == "config":
            flags[name] = parse_config(raw, flag_name(name))
        else:
            flags[name] = list(raw) if shape == "many" else raw
    return flags


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str] | None:
    """Repeated KEY=VALUE options as a dict (None when none were given)."""
    if not pairs:
        return None
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        parsed[key.strip()] = value.strip()
    return parsed


def parse_config(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """Backend config `KEY=VALUE` pairs as keywords; each VALUE is YAML (`0.7`, `[a, b]`)."""
    import yaml  # here: most runs set no backend config on the command line

    config: dict[str, Any] = {}
    for key, value in (parse_pairs(pairs, option) or {}).items():
        try:
            config[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise typer.BadParameter(
                f"{key}={value}: the value is not YAML ({problem})", param_hint=option
            ) from None
    return config


def _shape(field: FieldInfo) -> Shape:
    origin = get_origin(field.annotation)
    if field.annotation is bool:
        return "switch"
    if origin is dict:
        # str values pass to librdkafka as they are; others (backend config) are YAML.
        return "pairs" if get_args(field.annotation)[1] is str else "config"
    if origin is list:
        return "many"
    return "value"


def _option(name: str, aliases: Sequence[str], default: Any) -> Any:
    field = RuntimeSettings.model_fields[name]
    shape = _shape(field)
    flag = flag_name(name)
    help = _help(name, field, shape, default)
    if shape == "switch":
        decls = (f"{flag}/--no-{flag[2:]}", *aliases)
        return Annotated[bool | None, typer.Option(*decls, help=help, rich_help_panel=PANEL)]
    option = typer.Option(
        flag,
        *aliases,
        help=help,
        metavar={"pairs": "KEY=VALUE", "config": "KEY=VALUE", "many": "VALUE"}.get(shape),
        show_default=False,
        rich_help_panel=PANEL,
    )
    if shape in ("pairs", "config", "many"):
        return Annotated[list[str] | None, option]
    return Annotated[_without_none(field.annotation) | None, option]


def _without_none(annotation: Any) -> Any:
    # `str | None` -> str; typer makes every generated option optional again.
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [a for a in get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else Union[tuple(kept)]  # noqa: UP007
    return annotation


def _help(name: str, field: FieldInfo, shape: Shape, default: Any) -> str:
    parts = [field.description or name.replace("_", " ")]
    if shape in ("pairs", "config", "many"):
        parts.append("repeatable")
    where = f"env {env_name(name)}"
    if default is None:
        default = field.get_default(call_default_factory=True)
    if default not in (None, {}, []):
        where += f", default {default}"
    return f"{'; '.join(parts)} ({where})"
