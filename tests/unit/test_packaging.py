"""The wheel carries what an installed Packflow needs beyond the Python modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_finds_schemas_and_pom(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("packflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "schemas").glob("*.avsc")}
    assert shipped >= {"demo_input.avsc", "result.avsc", "dead_letter.avsc"}
    assert {f"consumer/_schemas/{n}" for n in shipped} <= names
    assert {"consumer/pom.xml", "packflow/py.typed", "consumer/py.typed"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "packflow = consumer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    # Installed (not editable), away from the checkout, the package finds its own files.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from consumer.contracts import schemas_dir, load_schema;"
        "from consumer.jars import POM, pinned_kafka_version;"
        "print(schemas_dir()); print(POM); print(load_schema('demo_input')['name']);"
        "print(pinned_kafka_version())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0] == str(target / "consumer" / "_schemas")
    assert out[1] == str(target / "consumer" / "pom.xml")
    assert out[2] == "packflow.demo.DemoInput"
    assert out[3].startswith("4.")
