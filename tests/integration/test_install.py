"""Packflow as a user installs it: beside a project with its own `backends/` and `consumer.py`,
and as a wheel in a fresh virtual environment, in an empty directory."""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import orjson
import pytest

from packflow.runtime.broker import port_in_use
from tests.conftest import TopicFactory, free_port_block
from tests.kafka_io import collect, distinct_keys
from tests.runtime_io import PACKFLOW, Run, demo_records, make_pipeline, produce_records

pytestmark = pytest.mark.broker

USER_MODEL = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return [{"model": "the user's", "id": row["id"], "x0_positive": row["x0"] > 0}
                for row in inputs]
"""

# A Kafka user's own module named like our runtime's folder: importing it is a bug.
USER_CONSUMER = """
from pathlib import Path
Path(__file__).with_name("consumer-was-imported").write_text("imported")
raise RuntimeError("the user's consumer.py was imported")
"""


def user_project(root: Path, with_init: bool) -> Path:
    project = root / "project"
    (project / "backends").mkdir(parents=True)
    (project / "backends" / "my_model.py").write_text(USER_MODEL)
    if with_init:
        (project / "backends" / "__init__.py").write_text("")
    (project / "consumer.py").write_text(USER_CONSUMER)
    return project


@pytest.mark.parametrize("with_init", [False, True], ids=["namespace", "package"])
def test_a_projects_own_backends_and_consumer_py_are_never_shadowed(
    kafka_bootstrap: str, make_topic: TopicFactory, tmp_path: Path, with_init: bool
) -> None:
    project = user_project(tmp_path, with_init)
    records = demo_records(600)
    sample = project / "sample.jsonl"
    sample.write_bytes(b"\n".join(orjson.dumps(r) for r in records[:5]))

    checked = subprocess.run(
        [PACKFLOW, "check", "backends.my_model:Backend", "--input", "sample.jsonl"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    outputs = [orjson.loads(line) for line in checked.stdout.splitlines()]
    assert [o["id"] for o in outputs] == [r["id"] for r in records[:5]]
    assert {o["model"] for o in outputs} == {"the user's"}

    pipeline = make_pipeline(kafka_bootstrap, make_topic, partitions=3)
    run = Run(pipeline, tmp_path / "run.log", "--backend", "backends.my_model:Backend", cwd=project)
    try:
        run.wait_for_replicas(1)
        produce_records(pipeline, records)
        got = collect(kafka_bootstrap, pipeline.results, distinct_keys(600), timeout=120)
    finally:
        code = run.terminate()
    assert code == 0
    assert len(got) == 600
    by_key = {(m.key() or b"").decode(): orjson.loads(m.value() or b"") for m in got}
    assert sorted(by_key) == sorted(r["id"] for r in records)
    for record in records:
        output = by_key[record["id"]]["output"]
        assert output["model"] == "the user's"
        assert output["id"] == record["id"]
    assert not (project / "consumer-was-imported").exists()


def test_the_wheel_in_a_fresh_venv_creates_checks_and_runs_the_demo_from_an_empty_directory(
    packflow_wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "--quiet", str(packflow_wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    base = free_port_block(2)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}} | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PACKFLOW_BROKER_PORT": str(base),
        "PACKFLOW_BROKER_CONTROLLER_PORT": str(base + 1),
        "PACKFLOW_BROKER_DATA_DIR": str(tmp_path / "kafka"),
        "COLUMNS": "200",
    }

    def packflow(*args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(bin_dir / "packflow"), *args],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"packflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    assert packflow("--version").strip() == "packflow 0.1.0"
    packflow("create", "my-model")
    checked = packflow("check", "my-model", "--input", "my-model/sample.jsonl")
    assert checked.strip() and all(orjson.loads(line) for line in checked.splitlines())
    # Nothing of the checkout leaks in: the venv's packflow is the wheel's.
    where = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import packflow.runtime; print(packflow.runtime.__file__)",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(env_dir)), where

    packflow("kafka", "start", timeout=180)
    try:
        out = packflow("demo", "--records", "2000", timeout=240)
    finally:
        packflow("kafka", "stop")
    assert f"Kafka at 127.0.0.1:{base}\n" in out  # the broker started before, not by the demo
    answered = re.search(r"│ keys answered\s+│ (\d+)", out)
    assert answered and answered.group(1) == "2000", out
    assert re.search(r"│ dead letters\s+│ 0\s", out), out
    assert not port_in_use(base)
