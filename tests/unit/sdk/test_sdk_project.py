"""`create_project` and `export_project`, as `packflow create` and `export` run them."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest
import yaml

from packflow import PackflowProject, ProjectError
from packflow.loaders import InferenceBackendLoader
from packflow.project import PackflowConfig, create_project, export_project


def test_create_writes_a_working_project(tmp_path: Path) -> None:
    path = create_project("my-model", directory=tmp_path)
    assert path == tmp_path / "my-model"
    assert sorted(p.name for p in path.iterdir()) == [
        "LICENSE.txt",
        "MODEL_CARD.md",
        "README.md",
        "inference.py",
        "packflow.yaml",
        "requirements.txt",
        "sample.jsonl",
        "test_inference.py",
        "validate.py",
    ]
    config = PackflowConfig.read(path)
    assert (config.name, config.version, config.inference_backend, config.loader) == (
        "my-model",
        "0.1.0",
        "inference:Backend",
        "local",
    )
    assert config.backend_config == {
        "feature_names": ["text"],
        "output_keys": ["words", "long"],
        "long_text_words": 5,
    }
    backend = InferenceBackendLoader.from_project(path)
    assert backend.check_io({"id": "9", "text": "a b c d e f"}) == {"words": 6, "long": True}


def test_created_projects_own_tests_pass(tmp_path: Path) -> None:
    path = create_project("tested", directory=tmp_path)
    spec = importlib.util.spec_from_file_location(
        "_created_project_tests", path / "test_inference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_create_refuses_an_existing_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ProjectError, match="taken already exists; use -f/--force"):
        create_project("taken", directory=tmp_path)
    create_project("taken", directory=tmp_path, force=True)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "taken" / "packflow.yaml").is_file()


@pytest.mark.parametrize("name", ["1abc", "has space", "", "a/b", "dot.ted"])
def test_create_refuses_invalid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ProjectError, match=f"Invalid project name {name!r}"):
        create_project(name, directory=tmp_path)


def test_create_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "clash").write_text("")
    with pytest.raises(ProjectError, match="clash exists and is not a directory"):
        create_project("clash", directory=tmp_path, force=True)


def test_export_packs_project_files_deterministically(tmp_path: Path) -> None:
    project = create_project("packed-app", directory=tmp_path)
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref")
    (project / "data").mkdir()
    (project / "data" / "weights.json").write_text("[1]")
    (project / "packed_app-0.0.1.zip").write_bytes(b"an older export")

    archive = export_project(project, tmp_path / "out")
    assert archive == tmp_path / "out" / "packed_app-0.1.0.zip"
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == [
            "LICENSE.txt",
            "MODEL_CARD.md",
            "README.md",
            "inference.py",
            "packflow.yaml",
            "requirements.txt",
            "sample.jsonl",
            "test_inference.py",
            "validate.py",
            "data/weights.json",
        ]
    first = archive.read_bytes()
    assert export_project(project, tmp_path / "out").read_bytes() == first


def test_export_into_the_project_leaves_the_archive_out(tmp_path: Path) -> None:
    project = create_project("self-out", directory=tmp_path)
    export_project(project, project)
    archive = export_project(project, project)
    with zipfile.ZipFile(archive) as zf:
        assert "self_out-0.1.0.zip" not in zf.namelist()


def test_export_needs_a_version_and_the_backend_file(tmp_path: Path) -> None:
    project = create_project("incomplete", directory=tmp_path)
    config = yaml.safe_load((project / "packflow.yaml").read_text())
    (project / "packflow.yaml").write_text(yaml.safe_dump({**config, "version": ""}))
    with pytest.raises(ProjectError, match="'version' is required for export but is empty"):
        export_project(project, tmp_path)
    (project / "packflow.yaml").write_text(yaml.safe_dump(config))
    (project / "inference.py").unlink()
    with pytest.raises(ProjectError, match="Inference backend file 'inference.py' is missing"):
        export_project(project, tmp_path)


def test_export_needs_a_project_directory(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="is not a project directory"):
        export_project(tmp_path / "missing", tmp_path)
    with pytest.raises(ProjectError, match="has no packflow.yaml"):
        export_project(tmp_path, tmp_path)


def test_packflow_project_wraps_create_and_export(tmp_path: Path) -> None:
    project = PackflowProject.create("wrapped", directory=tmp_path)
    assert project.base_dir == (tmp_path / "wrapped").resolve()
    assert project.load_config().name == "wrapped"
    assert project.export(tmp_path).name == "wrapped-0.1.0.zip"
