"""Packflow projects: a directory (or its exported .zip) with a `packflow.yaml` at its root.

```yaml
name: my-analytic            # letters, digits, - and _, starting with a letter
version: 0.1.0
description: ...
maintainers: [alice@example.com]
inference_backend: inference:Backend   # file:Class (loader: local) or module:Class
loader: local                          # local: a file in the project; module: importable
backend_config:                        # the backend's config; load-time keywords win
  feature_names: [text]
env:                                   # environment variables set when the project loads
  HF_HOME: /models
```

Other top-level sections (such as the runtime's `runtime:`) are kept and left to their
readers. `validate_project` checks a project as `packflow validate` and `export` do:
errors block an export, warnings do not. `create_project` writes a working project from a template, `export_project` packs
one into a deterministic .zip, and `locate_project` finds the project a path names,
unpacking an archive once into a cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import re
import shutil
import string
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from packflow.errors import ProjectError, short_repr

if TYPE_CHECKING:
    import pathspec

PROJECT_FILE = "packflow.yaml"
REQUIREMENTS_FILE = "requirements.txt"
CACHE_ENV = "PACKFLOW_CACHE_DIR"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"

# Never part of an exported archive: tool caches, environments and version control.
_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        ".tox",
        ".idea",
        ".vscode",
    }
)
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EXCLUDED_NAMES = frozenset({".DS_Store"})
# Upstream's names for what an export leaves out, and the modes its files get.
EXPORT_EXCLUDE_DIRS = _EXCLUDED_DIRS
EXPORT_EXCLUDE_PATTERNS = frozenset({f"*{suffix}" for suffix in _EXCLUDED_SUFFIXES})
FILE_PERMISSIONS = 0o644
DIR_PERMISSIONS = 0o755
# A fixed timestamp, so that the same files always make the same archive bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackflowConfig(BaseModel):
    """The contents of `packflow.yaml`. Unknown top-level keys are kept (`model_extra`)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=NAME_PATTERN)
    version: str = ""
    description: str = ""
    maintainers: list[str] = []
    inference_backend: str = Field("inference:Backend", pattern=r"^[^:]+:[^:]+$")
    loader: Literal["local", "module"] = "local"
    python_version: str = ""
    backend_config: dict[str, Any] = {}
    env: dict[str, str] = {}
    extra: dict[str, Any] = {}

    @classmethod
    def from_project_path(cls, base_dir: str | Path) -> PackflowConfig:
        """Upstream's name for `read`: the `packflow.yaml` of the project at `base_dir`."""
        return cls.read(Path(base_dir).resolve())

    def archive_file_name(self, base_dir: str | Path) -> Path:
        """Where `export` writes the archive in `base_dir`: `<base_dir>/<archive_name()>`."""
        return Path(base_dir).resolve() / self.archive_name()

    def write_yaml(self, base_dir: str | Path) -> Path:
        """Write this config as `<base_dir>/packflow.yaml` (metadata, runtime, then the
        `env`, `backend_config`, `extra` and other sections that are set)."""
        import yaml  # here, not at the top: `packflow run` without a project never needs it

        path = Path(base_dir).resolve() / PROJECT_FILE
        data = self.model_dump()
        data.update(self.model_extra or {})
        groups = [
            ("metadata", ["name", "version", "description", "maintainers"]),
            ("runtime", ["inference_backend", "loader", "python_version"]),
        ]
        parts = []
        for title, keys in groups:
            section = {k: data.pop(k) for k in keys}
            parts.append(f"# === {title.upper()} ===\n" + yaml.safe_dump(section, sort_keys=False))
        rest = {k: v for k, v in data.items() if v not in ({}, [], None, "")}
        if rest:
            parts.append("# === CONFIGURATION ===\n" + yaml.safe_dump(rest, sort_keys=False))
        path.write_text("\n".join(parts), encoding="utf-8")
        return path

    def write_requirements(self, base_dir: str | Path) -> Path:
        """Write `<base_dir>/requirements.txt` naming Packflow."""
        path = Path(base_dir).resolve() / REQUIREMENTS_FILE
        path.write_text("packflow\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, project_dir: Path) -> PackflowConfig:
        """Read and validate `<project_dir>/packflow.yaml`; `ProjectError` names the bad keys."""
        import yaml

        path = project_dir / PROJECT_FILE
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProjectError(
                f"{project_dir} has no {PROJECT_FILE}; create a project with `packflow create NAME`"
            ) from None
        except yaml.YAMLError as exc:
            raise ProjectError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ProjectError(f"{path} must hold a mapping of keys, not {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {short_repr(e.get('input'))})"
                if e["type"] != "missing"
                else f"{'.'.join(map(str, e['loc']))}: required"
                for e in exc.errors()
            )
            raise ProjectError(f"invalid {path}: {problems}") from None

    def archive_name(self) -> str:
        """`<name>-<version>.zip`, with `-` in the name made `_` so that the last `-` parts
        name from version (PEP 625)."""
        return f"{self.name.replace('-', '_')}-{self.version}.zip"


def get_python_version() -> str:
    """The running interpreter's version, `major.minor.micro`."""
    return ".".join(map(str, sys.version_info[:3]))


def normalize_archive_name(name: str) -> str:
    """A project name as it appears in an archive's file name: `-` made `_` (PEP 625)."""
    return name.replace("-", "_")


def apply_env_vars(config: PackflowConfig) -> None:
    """Set the environment variables of the config's `env:` section, warning when one
    replaces a different value already set."""
    from packflow.logging import get_logger

    for key, value in config.env.items():
        current = os.environ.get(key)
        if current is not None and current != value:
            get_logger().warning(
                "project_env_overrides", variable=key, current=current, project_value=value
            )
        os.environ[key] = value


def check_python_version(config: PackflowConfig) -> str | None:
    """A warning when the config's `python_version` differs from the running Python's
    major.minor version (or cannot be read), else None."""
    if not config.python_version:
        return None
    try:
        wanted = tuple(int(p) for p in config.python_version.split(".")[:2])
    except ValueError:
        wanted = ()
    if len(wanted) != 2:
        return (
            f"python_version {config.python_version!r} in {PROJECT_FILE} is not a version "
            f"like {get_python_version()!r}."
        )
    if wanted != sys.version_info[:2]:
        return (
            f"{PROJECT_FILE} specifies Python {config.python_version}, but the current "
            f"environment is Python {get_python_version()}."
        )
    return None


# Files every project needs, and files a distributed project should have.
REQUIRED_FILES = (PROJECT_FILE, REQUIREMENTS_FILE)
RECOMMENDED_FILES = ("MODEL_CARD.md", "LICENSE.txt", "README.md")
# Text our templates hold until the author replaces it.
_TEMPLATE_MARKERS = {
    "MODEL_CARD.md": "Replace this card",
    "README.md": "A Packflow inference backend.",
}


def _echo(verbose: bool, line: str) -> None:
    if verbose:  # the checklist of `packflow validate -v` and `export -v`, as upstream's
        sys.stdout.write(line + "\n")


def validate_project(
    project_dir: str | Path, config: PackflowConfig | None = None, *, verbose: bool = False
) -> tuple[list[str], list[str]]:
    """Check a project for distribution: `(errors, warnings)`.

    Errors (an export refuses to go on): a required file missing, `requirements.txt`
    without packflow, an empty name or version, a local backend file missing, a backend
    that does not import. Warnings: recommended files missing, empty or still the template,
    an empty description or maintainers list, a different Python version, requirements
    that are not installed here. `verbose` prints each check as it goes.
    """
    base = Path(project_dir).resolve()
    errors: list[str] = []
    warnings: list[str] = []
    _echo(verbose, "\nRequired files:")
    for name in REQUIRED_FILES:
        present = (base / name).is_file()
        _echo(verbose, f"  {'✓' if present else '✗'} {name}{'' if present else ' (missing)'}")
        if not present:
            errors.append(f"Required file '{name}' is missing.")
    if config is None and (base / PROJECT_FILE).is_file():
        config = PackflowConfig.read(base)
    if config is not None:
        _check_config(base, config, errors, warnings, verbose)
    requirements = base / REQUIREMENTS_FILE
    if requirements.is_file():
        _check_requirements(requirements, errors, warnings)
    _echo(verbose, "\nRecommended files:")
    for name in RECOMMENDED_FILES:
        path = base / name
        status = ""
        if not path.is_file():
            status = "missing"
            warnings.append(f"Recommended file '{name}' is missing.")
        elif not path.read_text(encoding="utf-8", errors="replace").strip():
            status = "empty"
            warnings.append(f"'{name}' is empty.")
        elif _TEMPLATE_MARKERS.get(name, "\0") in path.read_text(encoding="utf-8"):
            status = "template"
            warnings.append(f"'{name}' appears to be unchanged from template.")
        _echo(verbose, f"  {'⚠' if status else '✓'} {name}{f' ({status})' if status else ''}")
    return errors, warnings


def _check_config(
    base: Path, config: PackflowConfig, errors: list[str], warnings: list[str], verbose: bool
) -> None:
    if not config.version.strip():
        errors.append("'version' is required for export but is empty.")
    if not config.description.strip():
        warnings.append("'description' is empty. A description is recommended before distributing.")
    if not [m for m in config.maintainers if m.strip()]:
        warnings.append(
            "'maintainers' is empty. At least one maintainer is recommended before distributing."
        )
    _echo(verbose, f"    name: {config.name}, version: {config.version or '(empty)'}")
    python = check_python_version(config)
    if python:
        warnings.append(python)
    if config.loader == "local":
        module = config.inference_backend.split(":")[0]
        source = module if module.endswith(".py") else module.replace(".", "/") + ".py"
        if not (base / source).is_file():
            errors.append(
                f"Inference backend file '{source}' is missing. Required for local loader with "
                f"inference_backend '{config.inference_backend}'."
            )
            return
    # The smoke test: the backend's module imports and names a backend (not constructed).
    from packflow.loaders import LocalLoader, ModuleLoader

    loader_class = LocalLoader if config.loader == "local" else ModuleLoader
    try:
        loader_class(config.inference_backend, base_dir=base).load_backend_module()
    except Exception as exc:  # noqa: BLE001 (any failure to import is the finding)
        errors.append(
            f"inference_backend '{config.inference_backend}' failed the {loader_class.__name__} "
            f"smoke test: {exc}"
        )
        _echo(verbose, f"    ✗ {loader_class.__name__}: {exc}")
    else:
        _echo(verbose, f"    ✓ {loader_class.__name__} loads {config.inference_backend}")


def _check_requirements(path: Path, errors: list[str], warnings: list[str]) -> None:
    lines = [
        line.split("#")[0].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    names = [re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0] for line in lines]
    if "packflow" not in [n.lower() for n in names]:
        errors.append(f"'packflow' is not listed in {REQUIREMENTS_FILE}.")
    for name in names:
        if not name or name.startswith("-"):
            continue
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            warnings.append(
                f"Package '{name}' from {REQUIREMENTS_FILE} is not installed in the current "
                "environment."
            )


def locate_project(path: str | Path) -> Path:
    """The project directory `path` names: a directory, its `packflow.yaml`, or an exported
    .zip archive (unpacked once into the cache directory and reused while unchanged)."""
    given = Path(path)
    if given.is_dir():
        project = given
    elif given.is_file() and given.suffix in (".yaml", ".yml"):
        project = given.parent
    elif given.is_file() and zipfile.is_zipfile(given):
        project = _unpack(given)
    elif not given.exists():
        raise ProjectError(f"no project at {given}: no such file or directory")
    else:
        raise ProjectError(f"{given} is not a project directory, {PROJECT_FILE} or .zip archive")
    project = project.resolve()
    if not (project / PROJECT_FILE).is_file():
        raise ProjectError(
            f"{project} has no {PROJECT_FILE}; create a project with `packflow create NAME`"
        )
    return project


def cache_dir() -> Path:
    """Where archives are unpacked: `$PACKFLOW_CACHE_DIR`, else `~/.cache/packflow`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "packflow"


def _unpack(archive: Path) -> Path:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = cache_dir() / "projects" / f"{archive.stem}-{digest}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Unpack beside the target and rename: replicas starting together never see half a
        # project, and the loser of a race just drops its copy.
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    parts = PurePosixPath(member).parts
                    if member.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                        raise ProjectError(f"{archive}: refusing unsafe path {member!r}")
                zf.extractall(partial)
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
        except zipfile.BadZipFile as exc:
            raise ProjectError(f"{archive} is not a readable .zip archive: {exc}") from None
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    if (target / PROJECT_FILE).is_file():
        return target
    # An archive of the project's folder, rather than of its contents.
    nested = [d for d in target.iterdir() if (d / PROJECT_FILE).is_file()]
    if len(nested) == 1:
        return nested[0]
    raise ProjectError(f"{archive} holds no {PROJECT_FILE} at its root")


# The files every new project gets; the template's others are optional.
MANDATORY_TEMPLATE_FILES = frozenset({"inference.py", "packflow.yaml", "requirements.txt"})


def create_project(
    name: str,
    *,
    directory: str | Path = ".",
    force: bool = False,
    config_data: dict[str, Any] | None = None,
    optional_files: list[str] | None = None,
) -> Path:
    """Write a working project `<directory>/<name>`: `packflow.yaml`, a backend
    (`inference.py`), a sample input (`sample.jsonl`), its tests (`tests.py`), a script that
    validates the backend on the sample (`validate.py`), `MODEL_CARD.md`, `LICENSE.txt`,
    `README.md` and `requirements.txt`.

    `config_data` sets `packflow.yaml` fields (`version`, `description`, `maintainers`,
    `env`, `backend_config`, ...); `optional_files` limits the template's files to
    `inference.py`, `packflow.yaml`, `requirements.txt` and those named. An existing
    directory is written into only with `force` (same-named files are replaced); a new
    directory is removed again when writing fails.
    """
    if not re.match(NAME_PATTERN, name):
        raise ProjectError(
            f"Invalid project name '{name}'. Names must start with a letter and contain only "
            "letters, digits, hyphens, and underscores."
        )
    target = Path(directory) / name
    if target.exists() and not target.is_dir():
        raise ProjectError(f"{target} exists and is not a directory")
    if target.exists() and not force:
        raise ProjectError(
            f"{target} already exists; use -f/--force to write the project into it "
            "(files of the same names are overwritten)"
        )
    data = dict(config_data or {})
    data.pop("name", None)
    try:
        config = PackflowConfig.model_validate({"name": name, **data})
    except pydantic.ValidationError as exc:
        raise ProjectError(f"invalid config_data: {exc.errors()[0]['msg']}") from None
    maintainers = config.maintainers or []
    values = {
        "name": name,
        "version": config.version or "0.1.0",
        "description": config.description or f"What {name} computes, for whom.",
        "maintainers": "[" + ", ".join(maintainers) + "]",
        "python_version": config.python_version
        or f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    wanted = None if optional_files is None else MANDATORY_TEMPLATE_FILES | set(optional_files)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    templates = importlib.resources.files("packflow").joinpath("templates", "project")
    try:
        for template in templates.iterdir():
            file_name = template.name.removesuffix(".tmpl")
            if not template.name.endswith(".tmpl") or (
                wanted is not None and file_name not in wanted
            ):
                continue
            text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
            (target / file_name).write_text(text, encoding="utf-8")
        # Fields the template does not spell out: merged into packflow.yaml as written.
        others = {k: v for k, v in data.items() if k not in values}
        if others:
            path = target / PROJECT_FILE
            import yaml

            written = yaml.safe_load(path.read_text(encoding="utf-8"))
            written.update(others)
            PackflowConfig.model_validate(written).write_yaml(target)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def export_project(
    project_path: str | Path = ".", output_dir: str | Path = ".", *, verbose: bool = False
) -> Path:
    """Pack the project at `project_path` into `<output_dir>/<name>-<version>.zip`.

    The project is validated first (`validate_project`): any error raises a `ProjectError`
    listing them all. The archive holds the project's files at its root, less caches,
    environments, version control and what the project's `.gitignore` ignores, and is
    byte-for-byte the same for the same files, so it can be loaded as it is by
    `InferenceBackendLoader.from_project` and `packflow run`.
    """
    project = Path(project_path)
    if not project.is_dir():
        raise ProjectError(f"{project} is not a project directory")
    project = locate_project(project)
    config = PackflowConfig.read(project)
    errors, _ = validate_project(project, config, verbose=verbose)
    if errors:
        raise ProjectError(
            "Export blocked due to validation errors:\n" + "\n".join(f"  - {e}" for e in errors)
        )
    output = Path(output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    archive = output / config.archive_name()
    previous_exports = f"{config.name.replace('-', '_')}-*.zip"
    partial = archive.with_name(f".{archive.name}.partial")
    ignored = _gitignore(project)
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in _project_files(project):
            relative = path.relative_to(project)
            if len(relative.parts) == 1 and relative.match(previous_exports):
                continue
            if path.resolve() in (archive, partial) or ignored.match_file(relative.as_posix()):
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=_ZIP_EPOCH)
            mode = DIR_PERMISSIONS if os.access(path, os.X_OK) else FILE_PERMISSIONS
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(partial, archive)
    return archive


def _gitignore(project: Path) -> pathspec.GitIgnoreSpec:
    """The patterns of the project's `.gitignore` (none when it has none)."""
    import pathspec  # export only: not on a replica's path

    path = project / ".gitignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _project_files(project: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS)
        for name in sorted(files):
            if name not in _EXCLUDED_NAMES and not name.endswith(_EXCLUDED_SUFFIXES):
                yield Path(root, name)


class PackflowProject:
    """A project directory, with the operations `packflow create`, `validate` and `export`
    run."""

    REQUIRED_FILES: ClassVar[list[str]] = list(REQUIRED_FILES)
    RECOMMENDED_FILES: ClassVar[list[str]] = list(RECOMMENDED_FILES)

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = locate_project(base_dir)
        self.export_warnings: list[str] = []

    def __repr__(self) -> str:
        return f"PackflowProject({str(self.base_dir)!r})"

    @property
    def has_packflow_config(self) -> bool:
        """Whether the project has its `packflow.yaml`."""
        return (self.base_dir / PROJECT_FILE).is_file()

    @classmethod
    def create(
        cls,
        project_name: str,
        force: bool = False,
        template: str = "minimal",
        config_data: dict[str, Any] | None = None,
        optional_files: list[str] | None = None,
        directory: str | Path = ".",
    ) -> PackflowProject:
        """Write a new project from the template (see `create_project`) and open it.
        `template` is upstream's: its one template, `minimal`, is this one."""
        if template != "minimal":
            raise ProjectError(f"unknown template {template!r}; the template is 'minimal'")
        return cls(
            create_project(
                project_name,
                directory=directory,
                force=force,
                config_data=config_data,
                optional_files=optional_files,
            )
        )

    def load_config(self) -> PackflowConfig:
        """The project's `packflow.yaml`; its `env:` variables are set in this process."""
        config = PackflowConfig.read(self.base_dir)
        apply_env_vars(config)
        return config

    def validate_required_files(
        self, verbose: bool = False, config: PackflowConfig | None = None
    ) -> tuple[list[str], list[str]]:
        """`(errors, warnings)` of the project (see `validate_project`)."""
        return validate_project(self.base_dir, config, verbose=verbose)

    def export(self, output_directory: str | Path = ".", verbose: bool = False) -> Path:
        """Validate, then pack the project into a .zip archive (see `export_project`); the
        validation's warnings are kept in `export_warnings`."""
        archive = export_project(self.base_dir, output_directory, verbose=verbose)
        self.export_warnings = validate_project(self.base_dir)[1]
        return archive
