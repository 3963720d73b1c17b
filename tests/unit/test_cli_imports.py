"""`packflow run` loads what a replica needs and nothing of the other commands (start-up time
is part of time to first result); the whole command line is still there for --help."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from packflow.runtime.cli import COMMANDS, app

NOT_FOR_A_REPLICA = [
    "psutil",  # the broker launcher's
    "pathspec",  # project export's
    "packflow.runtime.broker",
    "packflow.runtime.jars",
    "packflow.runtime.cli.demo",
    "packflow.runtime.cli.status",
    "packflow.runtime.cli.kafka",
    "packflow.runtime.client",
    "packflow.runtime.acls",
]


def _loaded_by(command: str) -> set[str]:
    code = (
        "import json, sys\n"
        "from packflow.runtime.cli import make_app\n"
        f"make_app([{command!r}])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_packflow_run_imports_no_other_commands_code() -> None:
    loaded = _loaded_by("run")
    assert "packflow.runtime.replica" in loaded  # it did load the replica
    assert sorted(m for m in NOT_FOR_A_REPLICA if m in loaded) == []


def test_every_command_is_listed_and_each_loads_alone() -> None:
    listing = CliRunner().invoke(app, ["--help"]).stdout
    for name in COMMANDS:
        assert name in listing
    assert "packflow.runtime.broker" in _loaded_by("kafka")  # the others load their own


def test_the_console_script_runs_one_command_from_its_own_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "packflow.runtime.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--guarantee" in done.stdout
    typo = subprocess.run(
        [sys.executable, "-m", "packflow.runtime.cli", "rnu"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert typo.returncode != 0 and "rnu" in typo.stdout + typo.stderr
