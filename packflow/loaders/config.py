"""`packflow.yaml` at upstream's module path (`packflow.project` holds it)."""

from __future__ import annotations

from pathlib import Path

from packflow.project import (
    NAME_PATTERN,
    PackflowConfig,
    apply_env_vars,
    check_python_version,
    get_python_version,
    normalize_archive_name,
    validate_project,
)

__all__ = [
    "METADATA_KEYS",
    "NAME_PATTERN",
    "RUNTIME_CONFIG_KEYS",
    "PackflowConfig",
    "apply_env_vars",
    "check_python_version",
    "get_python_version",
    "load_packflow_config",
    "normalize_archive_name",
    "validate_for_export",
]

METADATA_KEYS = ["name", "version", "description", "maintainers"]
RUNTIME_CONFIG_KEYS = ["inference_backend", "loader", "python_version"]


def validate_for_export(
    config: PackflowConfig, project_dir: str | Path | None = None, verbose: bool = False
) -> tuple[list[str], list[str]]:
    """`(errors, warnings)` of a project's config and files (see `validate_project`);
    without `project_dir`, the working directory."""
    return validate_project(project_dir or ".", config, verbose=verbose)


def load_packflow_config(path_or_module: str | Path) -> PackflowConfig:
    """The `packflow.yaml` of the project directory `path_or_module`."""
    return PackflowConfig.from_project_path(path_or_module)
