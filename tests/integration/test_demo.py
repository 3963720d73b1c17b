"""The README's first command: `packflow demo` on its own broker, start to finish."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from packflow.runtime.broker import port_in_use
from tests.conftest import free_port_block
from tests.runtime_io import PACKFLOW


def test_demo_answers_every_record_on_two_replicas_and_stops_the_broker_it_started(
    tmp_path: Path,
) -> None:
    base = free_port_block(2)
    env = dict(
        os.environ,
        PACKFLOW_BROKER_PORT=str(base),
        PACKFLOW_BROKER_CONTROLLER_PORT=str(base + 1),
        PACKFLOW_BROKER_DATA_DIR=str(tmp_path / "kafka"),
        COLUMNS="200",  # the summary table on one line per row
    )
    done = subprocess.run(
        [PACKFLOW, "demo", "--records", "4000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert f"Kafka at 127.0.0.1:{base} (started)" in out

    def row(name: str) -> str:
        found = re.search(rf"│ {name}\s+│ ([^│]+?)\s+│", out)
        assert found, f"no {name!r} row in:\n{out}"
        return found.group(1)

    assert row("records produced") == "4000"
    assert row("keys answered") == "4000"
    assert row("dead letters") == "0"
    assert row("replicas exit code") == "0"
    assert re.search(r"│ decode\s+│ \d+", out)  # the per-stage table has rows
    # Both replicas did part of the work (their logs are named in the output).
    log = Path(re.search(r"logs:\s*(\S+replicas\.log)", out).group(1))  # type: ignore[union-attr]
    stopped = [line for line in log.read_text().splitlines() if '"replica_stopped"' in line]
    assert len(stopped) == 2
    assert all('"records_in":0,' not in line for line in stopped)
    assert "stopped the broker the demo started" in out
    assert not port_in_use(base)
