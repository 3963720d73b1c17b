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
```

Other top-level sections (such as the runtime's `runtime:`) are kept and left to their
readers. `create_project` writes a working project from a template, `export_project` packs
one into a deterministic .zip, and `locate_project` finds the project a path names,
unpacking an archive once into a cache directory.
"""

from __future__ import annotations

import hashlib
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
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from packflow.errors import ProjectError, short_repr

PROJECT_FILE = "packflow.yaml"
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

    @classmethod
    def read(cls, project_dir: Path) -> PackflowConfig:
        """Read and validate `<project_dir>/packflow.yaml`; `ProjectError` names the bad keys."""
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


def create_project(name: str, *, directory: str | Path = ".", force: bool = False) -> Path:
    """Write a working project `<directory>/<name>`: `packflow.yaml`, a backend
    (`inference.py`), a sample input (`sample.jsonl`), a test, a README and requirements.

    An existing directory is written into only with `force` (same-named files are replaced).
    """
    if not re.match(NAME_PATTERN, name):
        raise ProjectError(
            f"invalid project name {name!r}: start with a letter, then use only letters, "
            "digits, '-' and '_'"
        )
    target = Path(directory) / name
    if target.exists() and not target.is_dir():
        raise ProjectError(f"{target} exists and is not a directory")
    if target.exists() and not force:
        raise ProjectError(
            f"{target} already exists; use -f/--force to write the project into it "
            "(files of the same names are overwritten)"
        )
    values = {
        "name": name,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    target.mkdir(parents=True, exist_ok=True)
    templates = importlib.resources.files("packflow").joinpath("templates", "project")
    for template in templates.iterdir():
        if template.name.endswith(".tmpl"):
            text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
            (target / template.name.removesuffix(".tmpl")).write_text(text, encoding="utf-8")
    return target


def export_project(project_path: str | Path = ".", output_dir: str | Path = ".") -> Path:
    """Pack the project at `project_path` into `<output_dir>/<name>-<version>.zip`.

    The archive holds the project's files at its root (caches, environments and version
    control left out) and is byte-for-byte the same for the same files, so it can be loaded
    as it is by `InferenceBackendLoader.from_project` and `packflow run`.
    """
    project = Path(project_path)
    if not project.is_dir():
        raise ProjectError(f"{project} is not a project directory")
    project = locate_project(project)
    config = PackflowConfig.read(project)
    if not config.version.strip():
        raise ProjectError(f"{project / PROJECT_FILE}: version is empty; set it before exporting")
    if config.loader == "local":
        module = config.inference_backend.split(":")[0]
        source = module if module.endswith(".py") else module.replace(".", "/") + ".py"
        if not (project / source).is_file():
            raise ProjectError(
                f"{project / PROJECT_FILE}: inference_backend {config.inference_backend!r} "
                f"names {source}, which the project does not have"
            )
    output = Path(output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    archive = output / config.archive_name()
    previous_exports = f"{config.name.replace('-', '_')}-*.zip"
    partial = archive.with_name(f".{archive.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in _project_files(project):
            relative = path.relative_to(project)
            if len(relative.parts) == 1 and relative.match(previous_exports):
                continue
            if path.resolve() in (archive, partial):
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=_ZIP_EPOCH)
            info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    os.replace(partial, archive)
    return archive


def _project_files(project: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS)
        for name in sorted(files):
            if name not in _EXCLUDED_NAMES and not name.endswith(_EXCLUDED_SUFFIXES):
                yield Path(root, name)


class PackflowProject:
    """A project directory, with the operations `packflow create` and `export` run."""

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = locate_project(base_dir)

    def __repr__(self) -> str:
        return f"PackflowProject({str(self.base_dir)!r})"

    @classmethod
    def create(
        cls, project_name: str, force: bool = False, directory: str | Path = "."
    ) -> PackflowProject:
        """Write a new project from the template (see `create_project`) and open it."""
        return cls(create_project(project_name, directory=directory, force=force))

    def load_config(self) -> PackflowConfig:
        """The project's `packflow.yaml`."""
        return PackflowConfig.read(self.base_dir)

    def export(self, output_directory: str | Path = ".") -> Path:
        """Pack the project into a .zip archive (see `export_project`)."""
        return export_project(self.base_dir, output_directory)
