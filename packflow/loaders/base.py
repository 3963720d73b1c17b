"""Loading a backend from a reference string or from a project.

References name an attribute of a module: `package.module:Backend` (imported like any
module, with the base directory, by default the working directory, on `sys.path`) or
`path/to/file.py:Backend` (a file, relative to the base directory). The attribute is an
`InferenceBackend` subclass, constructed with the given keyword overrides, or an already
constructed backend, returned as it is.

    backend = InferenceBackendLoader.from_project("path/to/project", threshold=0.7)
    backend = load_backend("backends/logistic.py:LogisticBackend", threshold=0.7)

Each way loading can fail raises a `LoaderError` saying what was looked for, and where;
invalid config raises `ConfigError`, a failing `initialize()` `BackendError`, and a broken
project `ProjectError`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any

from packflow.backend import InferenceBackend
from packflow.config import merge_config
from packflow.errors import LoaderError, PackflowError
from packflow.project import PackflowConfig, apply_env_vars, locate_project

__all__ = [
    "InferenceBackendLoader",
    "LocalLoader",
    "ModuleLoader",
    "PackflowConfig",
    "load_backend",
]


class InferenceBackendLoader:
    """Loads the backend a reference names: `module:attr` or `path/to/file.py:attr`.

    The form of the reference picks how its module is found (a `.py` suffix or a `/` means
    a file); `LocalLoader` always reads a file and `ModuleLoader` always imports a module.
    """

    def __init__(self, path: str, *, base_dir: str | Path | None = None) -> None:
        module, sep, attr = path.rpartition(":")
        if not sep or not module or not attr or ":" in module:
            raise LoaderError(
                f"invalid backend reference {path!r}: write module:Class (packflow.examples.echo:EchoBackend) "
                "or path/to/file.py:Class"
            )
        self.path = path
        self.module = module
        self.attr = attr
        self.base_dir = Path(base_dir if base_dir is not None else ".").resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, base_dir={str(self.base_dir)!r})"

    def load_backend_module(self) -> Any:
        """The object the reference names (a backend class or instance), imported but not
        constructed."""
        module = self._import()
        try:
            return getattr(module, self.attr)
        except AttributeError:
            found = sorted(
                name
                for name, value in vars(module).items()
                if isinstance(value, type)
                and issubclass(value, InferenceBackend)
                and value is not InferenceBackend
            )
            hint = f"; its backends: {', '.join(found)}" if found else "; it defines no backend"
            raise LoaderError(f"{self.module} has no attribute {self.attr!r}{hint}") from None

    def load(self, **overrides: Any) -> InferenceBackend:
        """The constructed backend: the class built with `overrides` as its config keywords
        (highest precedence), or the instance the reference names when there are none."""
        target = self.load_backend_module()
        if isinstance(target, InferenceBackend):
            if overrides:
                raise LoaderError(
                    f"{self.path} is an already constructed backend, so config "
                    f"({', '.join(sorted(overrides))}) cannot be applied to it; reference its "
                    "class instead"
                )
            return target
        if not (isinstance(target, type) and issubclass(target, InferenceBackend)):
            raise LoaderError(
                f"{self.path} is {type(target).__name__} {target!r}, not an InferenceBackend "
                "subclass or instance"
            )
        try:
            return target(**overrides)
        except PackflowError:
            raise
        except Exception as exc:
            raise LoaderError(
                f"constructing {self.path} failed: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def from_project(cls, project_path: str | Path = ".", **overrides: Any) -> InferenceBackend:
        """Load the backend of the project at `project_path` (a directory, its
        `packflow.yaml` or an exported .zip).

        The config is the project's `backend_config:` with `overrides` over it; the
        project's `env:` variables are set first. The backend
        takes the project's `version` unless its class sets one.
        """
        project = locate_project(project_path)
        config = PackflowConfig.read(project)
        apply_env_vars(config)
        loader: InferenceBackendLoader = (
            LocalLoader(config.inference_backend, base_dir=project)
            if config.loader == "local"
            else ModuleLoader(config.inference_backend, base_dir=project)
        )
        backend = loader.load(**merge_config(config.backend_config, overrides))
        if config.version and not _sets_version(type(backend)):
            backend.version = config.version
        return backend

    def _import(self) -> ModuleType:
        if self.module.endswith(".py") or "/" in self.module or "\\" in self.module:
            return self._import_file(self.base_dir / self.module)
        return self._import_module()

    def _import_file(self, source: Path) -> ModuleType:
        source = source.resolve()
        if not source.is_file():
            raise LoaderError(f"no file {source} (from backend reference {self.path!r})")
        # A private, per-file module name: a project's `json.py` or `inference.py` never
        # shadows another module, and loading the same file twice reuses it.
        stem = re.sub(r"\W", "_", source.stem)
        name = f"_packflow_local_{stem}_{hashlib.sha1(str(source).encode()).hexdigest()[:10]}"
        if name in sys.modules:
            return sys.modules[name]
        # The file's directory goes on sys.path so that it can import its sibling modules.
        if str(source.parent) not in sys.path:
            sys.path.insert(0, str(source.parent))
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise LoaderError(f"{source} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise LoaderError(f"importing {source} failed: {type(exc).__name__}: {exc}") from exc
        return module

    def _import_module(self) -> ModuleType:
        # As `python -m` and uvicorn do: modules beside the base directory are importable.
        if str(self.base_dir) not in sys.path:
            sys.path.insert(0, str(self.base_dir))
        try:
            _prefer_local(self.module, self.path, [self.base_dir, Path.cwd()])
            return importlib.import_module(self.module)
        except LoaderError:
            raise
        except ModuleNotFoundError as exc:
            if exc.name and (self.module + ".").startswith(exc.name + "."):
                raise LoaderError(
                    f"no module named {self.module!r} (from backend reference {self.path!r}; "
                    f"searched sys.path and {self.base_dir})"
                ) from None
            raise LoaderError(
                f"importing {self.module} failed: ModuleNotFoundError: {exc}"
            ) from exc
        except Exception as exc:
            raise LoaderError(
                f"importing {self.module} failed: {type(exc).__name__}: {exc}"
            ) from exc


class LocalLoader(InferenceBackendLoader):
    """Reads the reference's module from a file under the base directory: `inference:Backend`
    is `inference.py`, `pkg.mod:Backend` is `pkg/mod.py`, `path/to/file.py:Backend` itself."""

    def _import(self) -> ModuleType:
        source = (
            self.module if self.module.endswith(".py") else self.module.replace(".", "/") + ".py"
        )
        return self._import_file(self.base_dir / source)


class ModuleLoader(InferenceBackendLoader):
    """Imports the reference's module by name (an installed package, or one under the base
    directory)."""

    def _import(self) -> ModuleType:
        return self._import_module()


def load_backend(
    reference: str, *, base_dir: str | Path | None = None, **overrides: Any
) -> InferenceBackend:
    """Load the backend `reference` names (`module:Class` or `path/to/file.py:Class`),
    constructed with `overrides` as config keywords."""
    return InferenceBackendLoader(reference, base_dir=base_dir).load(**overrides)


def _prefer_local(module: str, reference: str, roots: list[Path]) -> None:
    """Import `module`'s top-level package from the first of `roots` that holds `module`.

    A project's own code wins over anything installed: a project's `backends/` without an
    `__init__.py` is a namespace package, which Python's import system lets any installed
    regular package of the same name beat, wherever each sits on `sys.path`.
    """
    parts = module.split(".")
    for root in dict.fromkeys(r.resolve() for r in roots):
        target = root.joinpath(*parts)
        if not (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()):
            continue
        top = parts[0]
        loaded = sys.modules.get(top)
        if loaded is not None:
            where = [*getattr(loaded, "__path__", []), getattr(loaded, "__file__", None) or ""]
            if any(Path(w).resolve().is_relative_to(root) for w in where if w):
                return
            raise LoaderError(
                f"backend reference {reference!r}: {target.relative_to(root)} is in {root}, "
                f"but a module named {top!r} is already imported from "
                f"{where[0] or 'elsewhere'}; rename the project's package"
            )
        spec = PathFinder.find_spec(top, [str(root)])
        if spec is None:
            return
        found = importlib.util.module_from_spec(spec)
        sys.modules[top] = found
        if spec.loader is not None:
            try:
                spec.loader.exec_module(found)
            except BaseException:
                del sys.modules[top]
                raise
        return


def _sets_version(backend_class: type[InferenceBackend]) -> bool:
    return any("version" in vars(c) for c in backend_class.__mro__ if c is not InferenceBackend)
