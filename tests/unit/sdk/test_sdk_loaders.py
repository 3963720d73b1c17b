"""Loading backends from references and projects, and each way loading fails."""

from __future__ import annotations

import importlib
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packflow import BackendError, ConfigError, InferenceBackend, LoaderError, ProjectError
from packflow.loaders import InferenceBackendLoader, LocalLoader, ModuleLoader, load_backend
from packflow.project import export_project, locate_project

Write = Callable[[str, str], Path]

BACKEND_PY = """
from packflow import BackendConfig, InferenceBackend

class Config(BackendConfig):
    factor: int = 2

class Backend(InferenceBackend):
    backend_config_model = Config

    def execute(self, inputs):
        return [{"y": row["x"] * self.config.factor} for row in inputs]

class Versioned(Backend):
    version = "7"

instance = Backend(factor=5)
not_a_backend = 42

class Plain:
    pass
"""


@pytest.fixture
def backend_file(write: Write) -> Path:
    return write("models/scaler.py", BACKEND_PY)


def test_file_reference_with_overrides(backend_file: Path, tmp_path: Path) -> None:
    backend = load_backend("models/scaler.py:Backend", base_dir=tmp_path, factor=3)
    assert backend({"x": 2}) == {"y": 6}
    absolute = load_backend(f"{backend_file}:Backend")
    assert absolute({"x": 2}) == {"y": 4}


def test_module_reference_from_the_base_directory(backend_file: Path, tmp_path: Path) -> None:
    (tmp_path / "models" / "__init__.py").write_text("")
    backend = load_backend("models.scaler:Backend", base_dir=tmp_path, factor=10)
    assert backend({"x": 1}) == {"y": 10}
    assert type(backend).__module__ == "models.scaler"


def test_module_reference_of_an_installed_package() -> None:
    backend = ModuleLoader("packflow.examples.echo:EchoBackend").load()
    assert backend({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("regular", [False, True], ids=["namespace", "regular"])
def test_a_projects_own_package_wins_over_an_installed_one(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, regular: bool
) -> None:
    # An installed regular package named like the project's: Python's own import order would
    # let it beat a project directory without `__init__.py`.
    write("site/backends/__init__.py", "")
    write("site/backends/my_model.py", "raise RuntimeError('the installed one')")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    write("project/backends/my_model.py", BACKEND_PY)
    if regular:
        write("project/backends/__init__.py", "")
    project = tmp_path / "project"
    backend = load_backend("backends.my_model:Backend", base_dir=project, factor=4)
    assert backend({"x": 2}) == {"y": 8}
    module = sys.modules[type(backend).__module__]
    assert Path(module.__file__ or "").resolve() == (project / "backends" / "my_model.py").resolve()

    # From the working directory too, when the reference has no base directory.
    del sys.modules["backends"], sys.modules["backends.my_model"]
    monkeypatch.chdir(project)
    assert load_backend("backends.my_model:Backend")({"x": 1}) == {"y": 2}


def test_a_name_taken_by_an_imported_module_is_named(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("site/backends/__init__.py", "")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.import_module("backends")
    write("project/backends/my_model.py", BACKEND_PY)
    with pytest.raises(LoaderError, match=r"'backends' is already imported from .*site"):
        load_backend("backends.my_model:Backend", base_dir=tmp_path / "project")


def test_local_loader_reads_dotted_names_as_files(backend_file: Path, tmp_path: Path) -> None:
    backend = LocalLoader("models.scaler:Backend", base_dir=tmp_path).load()
    assert backend({"x": 1}) == {"y": 2}


def test_same_file_loads_as_one_module(backend_file: Path, tmp_path: Path) -> None:
    first = InferenceBackendLoader(
        "models/scaler.py:Backend", base_dir=tmp_path
    ).load_backend_module()
    again = LocalLoader("models.scaler:Backend", base_dir=tmp_path).load_backend_module()
    assert first is again


def test_instance_reference_is_returned_as_is(backend_file: Path, tmp_path: Path) -> None:
    backend = load_backend("models/scaler.py:instance", base_dir=tmp_path)
    assert backend({"x": 1}) == {"y": 5}


def test_instance_reference_with_overrides_is_an_error(backend_file: Path, tmp_path: Path) -> None:
    with pytest.raises(LoaderError) as info:
        load_backend("models/scaler.py:instance", base_dir=tmp_path, factor=1)
    assert str(info.value) == (
        "models/scaler.py:instance is an already constructed backend, so config (factor) cannot "
        "be applied to it; reference its class instead"
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_colon", "invalid backend reference 'no_colon': write module:Class"),
        ("a:b:c", "invalid backend reference 'a:b:c'"),
        (":Backend", "invalid backend reference ':Backend'"),
        (
            "models/scaler.py:Missing",
            "models/scaler.py has no attribute 'Missing'; its backends: Backend, Versioned",
        ),
        (
            "models/scaler.py:not_a_backend",
            (
                "models/scaler.py:not_a_backend is int 42, not an "
                "InferenceBackend subclass or instance"
            ),
        ),
        ("models/scaler.py:Plain", "is type <class"),
        ("models/absent.py:Backend", "no file "),
        (
            "no_such_module_xyz:Backend",
            (
                "no module named 'no_such_module_xyz' (from backend "
                "reference 'no_such_module_xyz:Backend'; searched sys.path and "
            ),
        ),
    ],
)
def test_loader_errors_say_what_and_where(
    backend_file: Path, tmp_path: Path, reference: str, message: str
) -> None:
    with pytest.raises(LoaderError) as info:
        load_backend(reference, base_dir=tmp_path)
    assert message in str(info.value)


def test_module_without_backends_says_so(write: Write, tmp_path: Path) -> None:
    write("empty_mod.py", "X = 1\n")
    with pytest.raises(
        LoaderError, match="empty_mod.py has no attribute 'B'; it defines no backend"
    ):
        load_backend("empty_mod.py:B", base_dir=tmp_path)


def test_import_failures_carry_the_cause(write: Write, tmp_path: Path) -> None:
    write("broken.py", "def f(:\n")
    write("needs_dep.py", "import not_installed_dep_xyz\n")
    with pytest.raises(LoaderError, match=r"importing .*broken.py failed: SyntaxError"):
        load_backend("broken.py:B", base_dir=tmp_path)
    with pytest.raises(LoaderError) as info:
        load_backend("needs_dep:B", base_dir=tmp_path)
    assert str(info.value) == (
        "importing needs_dep failed: ModuleNotFoundError: No module named 'not_installed_dep_xyz'"
    )


def test_construction_failures(write: Write, tmp_path: Path) -> None:
    write(
        "ctor.py",
        """
        from packflow import InferenceBackend

        class Strict(InferenceBackend):
            def __init__(self, api_key, **config):
                self.api_key = api_key
                super().__init__(**config)

            def execute(self, inputs):
                return inputs

        class Broken(InferenceBackend):
            def initialize(self):
                raise OSError("no GPU")

            def execute(self, inputs):
                return inputs
        """,
    )
    with pytest.raises(
        LoaderError, match=r"constructing ctor.py:Strict failed: TypeError: .*api_key"
    ):
        load_backend("ctor.py:Strict", base_dir=tmp_path)
    assert load_backend("ctor.py:Strict", base_dir=tmp_path, api_key="k").api_key == "k"  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match=r"Broken.initialize\(\) failed: OSError: no GPU"):
        load_backend("ctor.py:Broken", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="verbose"):
        load_backend("ctor.py:Strict", base_dir=tmp_path, api_key="k", verbose="loud")


PROJECT = """
name: scaler
version: 0.3.0
inference_backend: models/scaler.py:Backend
backend_config:
  factor: 4
runtime:
  replicas: 2
"""


@pytest.fixture
def project(backend_file: Path, write: Write, tmp_path: Path) -> Path:
    write("packflow.yaml", PROJECT)
    write("requirements.txt", "packflow\n")
    return tmp_path


def test_from_project_directory_yaml_and_overrides(project: Path) -> None:
    backend = InferenceBackendLoader.from_project(project)
    assert backend({"x": 1}) == {"y": 4}
    assert backend.version == "0.3.0"  # from the project: the class sets none
    assert InferenceBackendLoader.from_project(project / "packflow.yaml", factor=1)({"x": 1}) == {
        "y": 1
    }


def test_from_project_keeps_a_class_version(project: Path) -> None:
    (project / "packflow.yaml").write_text(PROJECT.replace(":Backend", ":Versioned"))
    assert InferenceBackendLoader.from_project(project).version == "7"


def test_from_project_module_loader(project: Path) -> None:
    (project / "models" / "__init__.py").write_text("")
    (project / "packflow.yaml").write_text(
        PROJECT.replace("models/scaler.py:Backend", "models.scaler:Backend") + "loader: module\n"
    )
    backend = InferenceBackendLoader.from_project(project)
    assert type(backend).__module__ == "models.scaler"
    assert backend({"x": 2}) == {"y": 8}


def test_from_project_works_from_another_directory(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert InferenceBackendLoader.from_project(project)({"x": 1}) == {"y": 4}


def test_from_an_exported_archive(project: Path, tmp_path: Path) -> None:
    archive = export_project(project, tmp_path / "dist")
    assert archive.name == "scaler-0.3.0.zip"
    backend = InferenceBackendLoader.from_project(archive, factor=6)
    assert backend({"x": 1}) == {"y": 6}
    unpacked = locate_project(archive)
    assert unpacked.parent == tmp_path / "cache" / "projects"
    assert locate_project(archive) == unpacked  # unpacked once, then reused


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (None, "has no packflow.yaml; create a project with `packflow create NAME`"),
        ("name: [unclosed", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping of keys, not list"),
        ("version: 1.0\n", "name: required"),
        ("name: 9lives\n", "name: String should match pattern"),
        ("name: ok\ninference_backend: nocolon\n", "inference_backend: String should match"),
        ("name: ok\nloader: zip\n", "loader: Input should be 'local' or 'module' (got 'zip')"),
    ],
)
def test_broken_projects_are_named(tmp_path: Path, yaml_text: str | None, message: str) -> None:
    if yaml_text is not None:
        (tmp_path / "packflow.yaml").write_text(yaml_text)
    with pytest.raises(ProjectError) as info:
        InferenceBackendLoader.from_project(tmp_path)
    assert message in str(info.value)


def test_project_paths_that_are_not_projects(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no project at .*nowhere: no such file or directory"):
        InferenceBackendLoader.from_project(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ProjectError, match="is not a project directory, packflow.yaml or .zip"):
        InferenceBackendLoader.from_project(tmp_path / "notes.txt")


def test_archive_with_unsafe_paths_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("packflow.yaml", "name: evil\n")
        zf.writestr("../escaped.py", "")
    with pytest.raises(ProjectError, match=r"refusing unsafe path '\.\./escaped\.py'"):
        InferenceBackendLoader.from_project(archive)
    assert not (tmp_path / "cache" / "escaped.py").exists()


def test_archive_of_the_project_folder_is_accepted(project: Path, tmp_path: Path) -> None:
    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(project / "packflow.yaml", "scaler/packflow.yaml")
        zf.write(project / "models" / "scaler.py", "scaler/models/scaler.py")
    assert InferenceBackendLoader.from_project(archive)({"x": 1}) == {"y": 4}


def test_archive_without_a_project(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "")
    with pytest.raises(ProjectError, match="holds no packflow.yaml at its root"):
        InferenceBackendLoader.from_project(archive)


def test_loaded_backend_is_an_inference_backend(project: Path) -> None:
    assert isinstance(InferenceBackendLoader.from_project(project), InferenceBackend)
