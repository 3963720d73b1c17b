"""`packflow run` as a child process, watched through its JSON log events.

One harness for everything that starts replicas and waits on them: the demo, the tests and
the benchmarks. The replicas log JSON lines to a file (`PACKFLOW_LOG_FORMAT=json`); events
are read back from it (`partitions_assigned`, `replica_stopped`, ...), lines that are not
JSON (a JVM's, librdkafka's before logging is set up) are skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["ReplicaProcess", "packflow_command", "read_events"]


def packflow_command() -> list[str]:
    """The `packflow` console script of this interpreter's environment (else `-m`)."""
    script = Path(sys.executable).parent / "packflow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "packflow.runtime.cli"]


def read_events(log: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The JSON log events in `log` (those named `name`), in order."""
    found = []
    for line in log.read_bytes().splitlines():
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a JVM's, librdkafka's or a traceback's line
        if isinstance(event, dict) and (name is None or event.get("event") == name):
            found.append(event)
    return found


class ReplicaProcess:
    """`packflow run ARGS...` (its stderr, the JSON log, appended to `log`)."""

    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> None:
        self.log = log
        environment = dict(os.environ) | {"PACKFLOW_LOG_FORMAT": "json"} | dict(env or {})
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*packflow_command(), "run", *args],
                stdout=stdout,
                stderr=err,
                env=environment,
                cwd=cwd,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return read_events(self.log, name)

    def until(self, done: Callable[[], bool], what: Callable[[], str], timeout: float) -> None:
        """Poll `done` until it holds; raises TimeoutError saying `what` after `timeout`, and
        RuntimeError if the run ends first (both with the log's tail)."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None:
                raise RuntimeError(f"packflow run exited early:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what()} in {timeout}s:\n{self.tail()}")
            time.sleep(0.2)

    def wait_for(self, name: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
        """Until `count` events named `name` were logged; returns them all."""
        self.until(
            lambda: len(self.events(name)) >= count, lambda: f"no {count} {name!r} events", timeout
        )
        return self.events(name)

    def holding(self) -> set[int]:
        """The replicas that have been given partitions at least once."""
        return {e["replica"] for e in self.events("partitions_assigned") if e["partitions"]}

    def wait_for_replicas(self, replicas: int, timeout: float = 90) -> None:
        """Until each of `replicas` replicas has been given partitions at least once."""
        self.until(
            lambda: len(self.holding()) >= replicas,
            lambda: f"only replicas {sorted(self.holding())} got partitions",
            timeout,
        )

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code; killed (and TimeoutError) if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError(f"no exit {timeout}s after SIGTERM:\n{self.tail()}") from None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]
