"""Backend references (upstream's `packflow.loaders.utils`)."""

from __future__ import annotations

from packflow.errors import LoaderError

__all__ = ["inference_backend_parts"]


def inference_backend_parts(path: str) -> list[str]:
    """`"pkg.mod:Backend"` -> `["pkg.mod", "Backend"]` (read: `from pkg.mod import Backend`).

    Raises `LoaderError` (a ValueError upstream) unless `path` holds exactly one colon.
    """
    parts = path.split(":")
    if len(parts) != 2 or not all(parts):
        raise LoaderError(
            f"invalid backend reference {path!r}: write module:Class, with exactly one colon"
        )
    return parts
