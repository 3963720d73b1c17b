"""`packflow create | validate | export` as upstream Packflow's command line has them, through
the SDK's own group (`packflow.cli.cli`) and through the `packflow` console script's app;
and `PackflowProject`'s upstream members."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import packflow.cli
from packflow import PackflowProject
from packflow.cli import cli
from packflow.runtime.cli import app

runner = CliRunner()

TEMPLATE_FILES = {
    "LICENSE.txt",
    "MODEL_CARD.md",
    "README.md",
    "inference.py",
    "packflow.yaml",
    "requirements.txt",
    "sample.jsonl",
    "test_inference.py",
    "validate.py",
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def finish(project: Path) -> None:
    """Fill in what upstream's checks warn about, so that only errors remain."""
    config = yaml.safe_load((project / "packflow.yaml").read_text())
    config["maintainers"] = ["ann@example.com"]
    (project / "packflow.yaml").write_text(yaml.safe_dump(config))
    (project / "MODEL_CARD.md").write_text("# A card\n")
    (project / "README.md").write_text("# Readme\n")
    (project / "LICENSE.txt").write_text("MIT\n")


def test_the_sdk_group_has_upstreams_commands() -> None:
    assert {"create", "export", "validate"} <= set(cli.commands)  # type: ignore[attr-defined]
    assert runner.invoke(packflow.cli.app, ["--version"]).stdout.startswith("packflow, version ")


@pytest.mark.parametrize("command", [packflow.cli.app, app], ids=["sdk", "console-script"])
def test_create_no_input(command: object, tmp_path: Path) -> None:
    result = runner.invoke(command, ["create", "hello-world", "--no-input"])  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Success: Created hello-world/"
    assert "    packflow validate   - check project structure" in lines
    assert {p.name for p in (tmp_path / "hello-world").iterdir()} == TEMPLATE_FILES
    config = yaml.safe_load((tmp_path / "hello-world" / "packflow.yaml").read_text())
    assert config["version"] == "0.1.0"


def test_create_errors_exit_1(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["create", "1bad"])
    assert bad.exit_code == 1
    assert bad.stdout == (
        "Error: Invalid project name '1bad'. Names must start with a letter and contain only "
        "letters, digits, hyphens, and underscores.\n"
    )
    nameless = runner.invoke(app, ["create", "--no-input"])
    assert nameless.exit_code == 1
    assert nameless.stdout.startswith("Error: Project name is required in non-interactive mode.")


def test_create_prompts_at_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(packflow.cli, "_interactive", lambda no_input: not no_input)
    monkeypatch.setattr(packflow.cli, "_git_email", lambda: "me@example.com")
    answers = "9no\nprompted\nScores things.\n1.2.0\n\n"
    result = runner.invoke(app, ["create"], input=answers)
    assert result.exit_code == 0, result.output
    assert "=== Initializing New Packflow Project ===" in result.stdout
    assert "Error: Names must start with a letter" in result.stdout
    config = yaml.safe_load((tmp_path / "prompted" / "packflow.yaml").read_text())
    assert (config["description"], config["version"], config["maintainers"]) == (
        "Scores things.",
        "1.2.0",
        ["me@example.com"],
    )


def test_validate_warnings_then_success(tmp_path: Path) -> None:
    runner.invoke(app, ["create", "demo", "--no-input"])
    result = runner.invoke(app, ["validate", "demo"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "",
        "4 warning(s) found",
        "",
        "Warning: 'maintainers' is empty. At least one maintainer is recommended before distributing.",
        "Warning: 'MODEL_CARD.md' appears to be unchanged from template.",
        "Warning: 'LICENSE.txt' is empty.",
        "Warning: 'README.md' appears to be unchanged from template.",
        "Success: Validation passed with warnings.",
    ]
    quiet = runner.invoke(app, ["validate", "demo", "--no-warnings"])
    assert quiet.stdout == "Success: All validation checks passed.\n"
    finish(tmp_path / "demo")
    clean = runner.invoke(app, ["validate", "demo"])
    assert clean.stdout == "Success: All validation checks passed.\n"
    verbose = runner.invoke(app, ["validate", "demo", "-v"])
    assert "=== Validation ===" in verbose.stdout
    assert "  ✓ packflow.yaml" in verbose.stdout
    assert "    ✓ LocalLoader loads inference:Backend" in verbose.stdout


def test_validate_errors_exit_1(tmp_path: Path) -> None:
    runner.invoke(app, ["create", "demo", "--no-input"])
    finish(tmp_path / "demo")
    (tmp_path / "demo" / "requirements.txt").write_text("numpy\n")
    (tmp_path / "demo" / "inference.py").write_text("import no_such_module\n")
    result = runner.invoke(app, ["validate", "demo"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "2 error(s) found"
    assert lines[3].startswith(
        "Error: inference_backend 'inference:Backend' failed the LocalLoader smoke test:"
    )
    assert lines[4] == "Error: 'packflow' is not listed in requirements.txt."
    missing = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and missing.stdout.startswith("Error: ")


def test_export_validates_first_and_honours_gitignore(tmp_path: Path) -> None:
    runner.invoke(app, ["create", "demo", "--no-input"])
    project = tmp_path / "demo"
    (project / ".gitignore").write_text("*.secret\ndata/\n")
    (project / "key.secret").write_text("s")
    (project / "data").mkdir()
    (project / "data" / "big.bin").write_text("b")
    (project / "kept.txt").write_text("k")
    result = runner.invoke(app, ["export", "demo", "-v", "-o", "dist"])
    assert result.exit_code == 0, result.output
    assert "=== Export Validation ===" in result.stdout
    assert "Warning: 'LICENSE.txt' is empty." in result.stdout
    names = set(zipfile.ZipFile(tmp_path / "dist" / "demo-0.1.0.zip").namelist())
    assert names == TEMPLATE_FILES | {".gitignore", "kept.txt"}

    config = yaml.safe_load((project / "packflow.yaml").read_text())
    (project / "packflow.yaml").write_text(yaml.safe_dump({**config, "version": ""}))
    blocked = runner.invoke(app, ["export", "demo"])
    assert blocked.exit_code == 1
    assert blocked.stdout == (
        "Error: Export blocked due to validation errors:\n"
        "  - 'version' is required for export but is empty.\n"
    )


def test_packflow_project_members(tmp_path: Path) -> None:
    project = PackflowProject.create(
        "members",
        config_data={"description": "d", "env": {"PACKFLOW_TEST_ENV": "on"}},
        optional_files=["README.md"],
    )
    assert project.has_packflow_config
    assert {p.name for p in project.base_dir.iterdir()} == {
        "inference.py",
        "packflow.yaml",
        "requirements.txt",
        "README.md",
    }
    assert project.REQUIRED_FILES == ["packflow.yaml", "requirements.txt"]
    assert project.RECOMMENDED_FILES == ["MODEL_CARD.md", "LICENSE.txt", "README.md"]
    os.environ.pop("PACKFLOW_TEST_ENV", None)
    config = project.load_config()
    assert config.description == "d" and os.environ.pop("PACKFLOW_TEST_ENV") == "on"
    errors, warnings = project.validate_required_files(config=config)
    assert errors == []
    assert "Recommended file 'MODEL_CARD.md' is missing." in warnings
    archive = project.export(tmp_path / "out", verbose=False)
    assert archive.name == "members-0.1.0.zip"
    assert "Recommended file 'LICENSE.txt' is missing." in project.export_warnings
