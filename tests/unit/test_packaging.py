"""The wheel claims only `packflow` names and carries what an installed Packflow needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_only_packflow_names(packflow_wheel: Path) -> None:
    names = zipfile.ZipFile(packflow_wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    # Never `consumer`, `backends` or `schemas`: those are a user's names to have.
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"packflow"}
    (metadata,) = (t for t in top_level if t.endswith(".dist-info"))
    assert zipfile.ZipFile(packflow_wheel).read(f"{metadata}/top_level.txt").split() == [
        b"packflow"
    ]
    entry_points = zipfile.ZipFile(packflow_wheel).read(f"{metadata}/entry_points.txt").decode()
    assert "packflow = packflow.runtime.cli:main" in entry_points


def test_wheel_carries_schemas_templates_pom_and_example_projects(packflow_wheel: Path) -> None:
    names = set(zipfile.ZipFile(packflow_wheel).namelist())
    shipped = {p.name for p in (ROOT / "schemas").glob("*.avsc")}
    assert shipped >= {"demo_input.avsc", "result.avsc", "dead_letter.avsc"}
    assert {f"packflow/runtime/_schemas/{n}" for n in shipped} <= names
    templates = {p.name for p in (ROOT / "packflow" / "templates" / "project").iterdir()}
    assert {f"packflow/templates/project/{n}" for n in templates} <= names
    assert {"packflow/runtime/pom.xml", "packflow/py.typed", "packflow/runtime/py.typed"} <= names
    for example in ("echo", "logistic", "torch_mlp", "text_embedding"):
        files = {p.name for p in (ROOT / "backends" / example).iterdir() if p.is_file()}
        assert {f"packflow/examples/{example}/{n}" for n in files} <= names, example


def test_installed_wheel_finds_its_files_away_from_the_checkout(
    packflow_wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target]
        + [str(packflow_wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from packflow.runtime.contracts import schemas_dir, load_schema;"
        "from packflow.runtime.jars import POM, pinned_kafka_version;"
        "import packflow.examples.logistic as logistic;"
        "print(schemas_dir()); print(POM); print(load_schema('demo_input')['name']);"
        "print(pinned_kafka_version()); print(logistic.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0] == str(target / "packflow" / "runtime" / "_schemas")
    assert out[1] == str(target / "packflow" / "runtime" / "pom.xml")
    assert out[2] == "packflow.demo.DemoInput"
    assert out[3].startswith("4.")
    assert out[4] == str(target / "packflow" / "examples" / "logistic" / "__init__.py")


def test_wheel_carries_every_module_of_the_checkout(packflow_wheel: Path) -> None:
    # pyproject.toml lists the packages by name: a new subpackage must not be left out.
    names = set(zipfile.ZipFile(packflow_wheel).namelist())
    installed_as = {
        "packflow": "packflow",
        "consumer": "packflow/runtime",
        "backends": "packflow/examples",
    }
    expected = {
        f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder, target in installed_as.items()
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert expected - names == set()
