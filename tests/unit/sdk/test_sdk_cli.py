"""`packflow check | create | export` through the real command line app (upstream's own
behaviour of create, export and validate: test_upstream_cli.py)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import fastavro
import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from packflow.runtime.cli import app

REPO = Path(__file__).resolve().parents[3]
LOGISTIC_SAMPLE = REPO / "backends" / "logistic" / "sample.jsonl"

runner = CliRunner()

LEAKY = """
import numpy as np
from packflow import InferenceBackend

class Leaky(InferenceBackend):
    def execute(self, inputs):
        return [{"v": np.float64(r["x"]) if r["x"] < 0 else r["x"]} for r in inputs]

class Crashes(InferenceBackend):
    def execute(self, inputs):
        raise RuntimeError("model exploded")
"""


def jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_check_prints_outputs_as_json_lines_and_a_stage_summary() -> None:
    result = runner.invoke(
        app,
        ["check", "packflow.examples.logistic:LogisticBackend", "--input", str(LOGISTIC_SAMPLE)],
    )
    assert result.exit_code == 0, result.output
    outputs = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [o["label"] for o in outputs] == [1, 0, 0, 1, 1, 0]
    assert outputs[0]["score"] == pytest.approx(0.8157661607567193)
    for stage in ("preprocess", "execute", "transform_outputs", "validate", "total"):
        assert stage in result.stderr
    assert "logistic 1: 6 records" in result.stderr
    assert "records/s through the pipeline" in result.stderr


def test_check_batches_the_input() -> None:
    result = runner.invoke(
        app,
        ["check", str(REPO / "backends" / "logistic"), "-i", str(LOGISTIC_SAMPLE), "-b", "4"],
    )
    assert result.exit_code == 0, result.output
    execute_row = next(line for line in result.stderr.splitlines() if "execute" in line)
    assert execute_row.split("│")[2].strip() == "2"  # 6 records in batches of 4: 2 calls


def test_check_table_output_and_config_overrides() -> None:
    result = runner.invoke(
        app,
        [
            "check",
            "packflow.examples.logistic:LogisticBackend",
            "-i",
            str(LOGISTIC_SAMPLE),
            "-o",
            "table",
            "--set",
            "threshold=0.99",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "row" in lines[1] and "score" in lines[1] and "label" in lines[1]
    body = [line.split("│") for line in lines if line.startswith("│ ")]
    assert [cells[1].strip() for cells in body] == ["0", "1", "2", "3", "4", "5"]
    assert [cells[3].strip() for cells in body] == ["0"] * 6  # no score reaches 0.99


def test_check_reads_avro_container_files(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "In", "fields": [{"name": "text", "type": "string"}]}
    avro = tmp_path / "in.avro"
    with avro.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), [{"text": "a"}, {"text": "bc"}])
    result = runner.invoke(app, ["check", "packflow.examples.echo:EchoBackend", "-i", str(avro)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ['{"text":"a"}', '{"text":"bc"}']


def test_check_validation_failure_exits_1_naming_rows(
    write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write("leaky.py", LEAKY)
    data = jsonl(tmp_path / "in.jsonl", [{"x": 1}, {"x": -2}, {"x": 3}, {"x": -4}])
    result = runner.invoke(
        app, ["check", f"{tmp_path}/leaky.py:Leaky", "-i", str(data), "--batch-size", "2"]
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ['{"v":1}', '{"v":3}']
    assert (
        "row 1 failed rule 'json_serializable': v: numpy.float64 is not JSON-serializable; "
        f"convert numpy values with .item() or .tolist() (value: {np.float64(-2.0)!r})"
    ) in result.stderr
    assert "row 3 failed rule 'json_serializable'" in result.stderr
    assert "error: 2 of 4 rows failed" in result.stderr


def test_check_stage_failure_exits_1(write: Callable[[str, str], Path], tmp_path: Path) -> None:
    write("leaky.py", LEAKY)
    data = jsonl(tmp_path / "in.jsonl", [{"x": 1}])
    result = runner.invoke(app, ["check", f"{tmp_path}/leaky.py:Crashes", "-i", str(data)])
    assert result.exit_code == 1
    assert "rows 0-0: Crashes.execute() failed: RuntimeError: model exploded" in result.stderr


def test_check_warns_about_missing_output_keys(tmp_path: Path) -> None:
    data = jsonl(tmp_path / "in.jsonl", [{"a": 1}, {"b": 2}])
    result = runner.invoke(
        app,
        [
            "check",
            "packflow.examples.echo:EchoBackend",
            "-i",
            str(data),
            "--set",
            "output_keys=[a]",
        ],
    )
    assert result.exit_code == 0
    assert "warning: output key 'a' (in output_keys) missing from rows 1" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "nowhere_xyz:B", "-i", "x.jsonl"], "error: no module named 'nowhere_xyz'"),
        (
            ["check", "packflow.examples.echo:EchoBackend", "-i", "missing.jsonl"],
            "error: cannot read missing.jsonl",
        ),
        (
            [
                "check",
                "packflow.examples.echo:EchoBackend",
                "-i",
                "x.jsonl",
                "--set",
                "verbose=maybe",
            ],
            "error: invalid config for echo (EchoConfig): verbose",
        ),
    ],
)
def test_check_cannot_start_exits_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    jsonl(tmp_path / "x.jsonl", [{"a": 1}])
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_check_bad_input_line_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"a": 1}\n[1, 2]\n')
    result = runner.invoke(app, ["check", "packflow.examples.echo:EchoBackend", "-i", str(data)])
    assert result.exit_code == 2
    assert f"error: {data}:2: JSON list, not an object" in result.stderr


def test_check_bad_set_is_a_usage_error() -> None:
    result = runner.invoke(
        app, ["check", "packflow.examples.echo:EchoBackend", "-i", "x", "--set", "novalue"]
    )
    assert result.exit_code == 2
    assert "'novalue' is not KEY=VALUE" in result.output


def test_create_check_and_export_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    created = runner.invoke(app, ["create", "demo-app", "--no-input"])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("Success: Created demo-app/\n")

    checked = runner.invoke(app, ["check", "demo-app", "-i", "demo-app/sample.jsonl"])
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.splitlines() == [
        '{"words":2,"long":false}',
        '{"words":9,"long":true}',
        '{"words":0,"long":false}',
    ]

    exported = runner.invoke(app, ["export", "demo-app", "-o", "dist"])
    assert exported.exit_code == 0, exported.output
    archive = tmp_path / "dist" / "demo_app-0.1.0.zip"
    assert exported.stdout.splitlines()[-1] == f"Success: Saved Package to {archive}"
    assert "inference.py" in zipfile.ZipFile(archive).namelist()

    from_zip = runner.invoke(
        app, ["check", str(archive), "-i", "demo-app/sample.jsonl", "--set", "long_text_words=1"]
    )
    assert from_zip.exit_code == 0, from_zip.output
    assert from_zip.stdout.splitlines()[0] == '{"words":2,"long":true}'


def test_create_existing_needs_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists").mkdir()
    refused = runner.invoke(app, ["create", "exists"])
    assert refused.exit_code == 1
    assert "Error: exists already exists; use -f/--force" in refused.stdout
    forced = runner.invoke(app, ["create", "exists", "-f"])
    assert forced.exit_code == 0
    assert (tmp_path / "exists" / "packflow.yaml").is_file()


def test_export_failure_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.startswith("Error: ")
    assert "has no packflow.yaml" in result.stdout
