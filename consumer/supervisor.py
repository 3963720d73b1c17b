"""`--replicas N`: N replica processes under a supervisor.

The supervisor restarts a replica that exits with an error or dies (with exponential backoff,
reset once a replica has run for a minute), forwards SIGTERM/SIGINT to every replica, waits for
their graceful shutdown and exits 0 when all of them did.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from packflow.logging import get_logger

from .quarantine import TIMEOUT_EXIT
from .replica import Replica
from .settings import RuntimeSettings

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 30.0
_HEALTHY_AFTER_S = 60.0


def run_replica(
    settings: RuntimeSettings,
    index: int = 0,
    owner_pid: int | None = None,
    previous_exit: str | None = None,
) -> int:
    """Run one replica in this process until SIGTERM/SIGINT; returns its exit code.
    `previous_exit`: how the process this one replaces ended (see `describe_exit`)."""
    replica = Replica(settings, index, owner_pid, previous_exit)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: replica.stop())
    return replica.run()


def exit_replica(code: int) -> NoReturn:
    """End a replica's process. After a failure, skip interpreter teardown: a librdkafka handle
    left stuck in a call (see consumer/transactions.py) can block its destructor forever."""
    if code == 0:
        sys.exit(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def describe_exit(code: int | None) -> str:
    """A replica process's end as a crash mark records it: `exit 7`, `signal 9`, `timeout`."""
    if code == TIMEOUT_EXIT:
        return "timeout"
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit {code}"


def _replica_main(
    dumped: dict[str, Any], index: int, owner_pid: int, previous_exit: str | None
) -> None:
    exit_replica(run_replica(RuntimeSettings(**dumped), index, owner_pid, previous_exit))


class Supervisor:
    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.log = get_logger(supervisor=os.getpid())
        self._context = multiprocessing.get_context("spawn")
        self._procs: dict[int, BaseProcess] = {}
        self._started: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self._exits: dict[int, str] = {}
        self._stopping = False

    def _start(self, index: int) -> None:
        dumped = self.settings.model_dump(mode="json")
        proc = self._context.Process(
            target=_replica_main,
            args=(dumped, index, os.getpid(), self._exits.get(index)),
            name=f"packflow-replica-{index}",
        )
        proc.start()
        self._procs[index] = proc
        self._started[index] = time.monotonic()
        self.log.info("replica_spawned", replica=index, pid=proc.pid)

    def _stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        for index in range(self.settings.replicas):
            self._start(index)
        while not self._stopping:
            self._watch()
            time.sleep(0.1)
        return self._shutdown()

    def _watch(self) -> None:
        now = time.monotonic()
        for index, proc in list(self._procs.items()):
            if proc.is_alive():
                continue
            if index in self._restart_at:
                if now >= self._restart_at[index]:
                    del self._restart_at[index]
                    self._start(index)
                continue
            proc.join()
            self._exits[index] = describe_exit(proc.exitcode)
            if now - self._started[index] >= _HEALTHY_AFTER_S:
                self._failures[index] = 0
            failures = self._failures.get(index, 0)
            delay = min(_BACKOFF_MAX_S, _BACKOFF_START_S * 2**failures)
            self._failures[index] = failures + 1
            self._restart_at[index] = now + delay
            self.log.warning(
                "replica_exited", replica=index, exitcode=proc.exitcode, restart_in_s=delay
            )

    def _shutdown(self) -> int:
        self.log.info("supervisor_stopping", replicas=len(self._procs))
        alive = [p for p in self._procs.values() if p.is_alive()]
        for proc in alive:
            os.kill(proc.pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.settings.shutdown_timeout_s + 5
        for proc in alive:
            proc.join(max(0.0, deadline - time.monotonic()))
        codes = []
        for proc in alive:
            if proc.is_alive():
                proc.kill()
                proc.join()
            codes.append(proc.exitcode)
        self.log.info("supervisor_stopped", exitcodes=codes)
        # -SIGTERM: a replica still starting (its handler not yet installed) ended by the
        # SIGTERM sent above, before it took any work: as clean a stop as exit code 0.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
