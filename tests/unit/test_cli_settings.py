"""The command line made from `RuntimeSettings`: a flag per field named as its variable, the
old spellings as aliases, warnings and errors as one line each."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from packflow.runtime.cli import app, main
from packflow.runtime.cli.options import flag_name, settings_options
from packflow.runtime.settings import (
    RuntimeSettings,
    consumer_config,
    env_name,
    producer_config,
)
from tests.unit.test_settings import SAMPLES

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_packflow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PACKFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no packflow.yaml here


def commands() -> dict[str, Any]:
    """Every command of the app by its full name (`dlq replay`)."""
    found = {}

    def walk(command: Any, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            if hasattr(sub, "commands"):
                walk(sub, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = sub

    walk(typer.main.get_command(app), "")
    return found


def options(command: str) -> dict[str, list[str]]:
    """A command's parameters by name, with their option strings."""
    return {p.name: [*p.opts, *p.secondary_opts] for p in commands()[command].params}


def printed(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = runner.invoke(app, ["run", "--print-settings", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_setting_is_a_flag_of_run_named_as_its_variable() -> None:
    run = options("run")
    for field in RuntimeSettings.model_fields:
        flag = flag_name(field)
        assert flag in run[field], field
        assert "PACKFLOW_" + flag[2:].replace("-", "_").upper() == env_name(field)


def test_each_flag_sets_its_setting(tmp_path: Path) -> None:
    (tmp_path / "packflow.yaml").write_text("name: p\n")
    for field, info in RuntimeSettings.model_fields.items():
        flag = flag_name(field)
        if field == "project":
            args, expected = [flag, str(tmp_path)], str(tmp_path)
        elif info.annotation is bool:
            args, expected = [flag], True
        elif field.endswith("kafka") or field == "registry_config":
            args, expected = [flag, "x.y=1"], {"x.y": "1"}
        elif field == "backend_config":
            args, expected = [flag, "x=[1, 2]"], {"x": [1, 2]}
        elif field in ("known_schemas", "retry_permanent_errors"):
            args, expected = [flag, "a", flag, "b"], ["a", "b"]
        else:
            value, expected = SAMPLES[field]
            args = [flag, value]
            if field == "codec":
                args += ["--registry-url", "http://r:8081"]
        assert printed(*args)[field] == expected, field


def test_wherever_a_command_takes_a_setting_it_is_the_generated_flag() -> None:
    taking = {}
    for name, command in commands().items():
        for param in command.params:
            if param.param_type_name == "option" and param.name in RuntimeSettings.model_fields:
                assert flag_name(param.name) in param.opts, (name, param.name)
                taking.setdefault(name, set()).add(param.name)
    assert taking["run"] == set(RuntimeSettings.model_fields)
    assert {"bootstrap_servers", "input_topic", "project"} <= taking["topics create"]
    assert {"bootstrap_servers", "kafka", "producer_kafka"} <= taking["produce"]
    assert {"group_id", "input_topic"} <= taking["status"]
    assert taking["check"] == {"backend_config"}
    assert taking["demo"] == {"replicas"}


def test_old_spellings_stay_as_aliases() -> None:
    run = options("run")
    assert "--schema" in run["input_schema"]
    assert "--shutdown-timeout" in run["shutdown_timeout_s"]
    for command in ("run", "check"):
        assert {"--backend-config", "--config", "--set", "-s"} <= set(
            options(command)["backend_config"]
        )
    assert "--topic" in options("produce")["input_topic"]
    assert "--topic" in options("results")["results_topic"]
    for command in ("dlq list", "dlq show", "dlq replay"):
        assert "--topic" in options(command)["dead_letter_topic"]
    shown = printed("--schema", "text_input", "--shutdown-timeout", "3", "--set", "a=1")
    assert (shown["input_schema"], shown["shutdown_timeout_s"]) == ("text_input", 3.0)
    assert shown["backend_config"] == {"a": 1}


def test_check_takes_config_as_run_does(tmp_path: Path) -> None:
    sample = tmp_path / "in.jsonl"
    sample.write_text('{"x": 1}\n')
    for flag in ("--set", "--config", "--backend-config", "-s"):
        result = runner.invoke(
            app,
            ["check", "packflow.examples.echo:EchoBackend", "-i", str(sample), flag, "verbose=7"],
        )
        assert result.exit_code == 2, (flag, result.output)
        assert "packflow: error: invalid config for echo (EchoConfig): verbose" in result.stderr


def test_each_passthrough_flag_reaches_only_the_clients_it_names() -> None:
    shown = printed(
        "--kafka",
        "client.rack=r1",
        "--consumer-kafka",
        "queued.min.messages=1000",
        "--producer-kafka",
        "batch.num.messages=500",
        env={"PACKFLOW_CONSUMER_KAFKA__FETCH_MAX_BYTES": "2000"},
    )
    settings = RuntimeSettings(**shown)
    consumer, producer = consumer_config(settings), producer_config(settings)
    assert consumer["client.rack"] == producer["client.rack"] == "r1"
    assert consumer["queued.min.messages"] == "1000" and consumer["fetch.max.bytes"] == "2000"
    assert "queued.min.messages" not in producer and "fetch.max.bytes" not in producer
    assert producer["batch.num.messages"] == "500" and "batch.num.messages" not in consumer


def test_an_unknown_variable_is_one_warning_line() -> None:
    result = runner.invoke(app, ["run", "--print-settings"], env={"PACKFLOW_SCHEMA": "text_input"})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "packflow: warning: PACKFLOW_SCHEMA names no setting and is ignored; did you mean "
        + "PACKFLOW_INPUT_SCHEMA?"
    ]
    assert json.loads(result.stdout)["input_schema"] == "demo_input"


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (
            ["run", "--print-settings", "--max-batch-size", "0"],
            {},
            "packflow: error: invalid settings: max_batch_size: Input should be greater than or "
            + "equal to 1 (got 0)",
        ),
        (
            ["run", "--print-settings"],
            {"PACKFLOW_KNOWN_SCHEMAS": "a,b"},
            'packflow: error: invalid settings: error parsing value for field "known_schemas"',
        ),
        (
            ["kafka", "start", "--nodes", "2"],
            {},
            "packflow: error: invalid broker settings: nodes: ",
        ),
        (
            ["run"],
            {"OTEL_TRACES_EXPORTER": "zipkinn"},
            "packflow: error: OTEL_TRACES_EXPORTER=zipkinn: ",
        ),
    ],
)
def test_a_bad_value_is_one_error_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    line: str,
) -> None:
    if env.get("OTEL_TRACES_EXPORTER"):
        pytest.importorskip("opentelemetry.sdk")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["packflow", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(line), err
    assert len(err.splitlines()) == 1


def test_a_commands_own_default_gives_way_to_the_flag_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []
    demo_like = typer.Typer()

    @demo_like.command()
    @settings_options("replicas", defaults={"replicas": 2})
    def command(*, flags: dict[str, Any]) -> None:
        seen.append(flags)

    assert runner.invoke(demo_like, []).exit_code == 0
    assert runner.invoke(demo_like, ["--replicas", "3"]).exit_code == 0
    monkeypatch.setenv("PACKFLOW_REPLICAS", "4")
    assert runner.invoke(demo_like, []).exit_code == 0
    assert seen == [{"replicas": 2}, {"replicas": 3}, {}]
