"""Option parsing the command groups share."""

from __future__ import annotations

import typer


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
