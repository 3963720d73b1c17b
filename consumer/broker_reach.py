"""Brokers that are away: one line saying so, not librdkafka's 20 a second.

librdkafka logs every failed connect (`FAIL ... Connect to ... failed: Connection refused`),
for each client, each broker, each retry, and reports `_ALL_BROKERS_DOWN`, `_RESOLVE`,
`_SSL` and `_AUTHENTICATION` to the error callback. These all come here instead of the log.
The fetch loop calls `tick()` each turn: a second after the first failure it asks the
cluster for metadata (one short call, on the loop's own consumer). If that fails the brokers
are away: one `broker_unreachable` line naming the bootstrap servers and the reason
(refused, DNS, TLS, authentication, timed out), `/readyz` false saying why, then one
`broker_still_unreachable` reminder per `remind_every_s` (30 s) while it lasts, the failures
collapsed into a count; once metadata comes back, one `broker_reachable` line. Failures
while the cluster still answers (one broker of three restarting) are one
`broker_connect_failed` line per `remind_every_s`.

Thread-safe: the clients' callbacks report failures from the threads that poll them;
`tick()` runs on the fetch loop; `reason()` on the metrics server's thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BrokerReach", "classify", "is_connect_failure"]

# Words in a failure's text that name its reason, first match wins.
_REASONS = (
    ("refused", ("connection refused",)),
    ("DNS", ("failed to resolve", "name or service not known", "nodename nor servname")),
    ("authentication", ("sasl", "authentication", "authenticat", "invalid credentials")),
    ("TLS", ("ssl", "certificate", "tls")),
    ("timed out", ("timed out", "timeout")),
)


def classify(text: str) -> str:
    """The reason a failure's text gives: refused, DNS, TLS, authentication, timed out, or
    unreachable when it names none of them."""
    # Without the listeners' names (`sasl_ssl://host:port`): they say nothing of the reason.
    lowered = re.sub(r"\b[a-z_]+://", "", text.lower())
    for reason, words in _REASONS:
        if any(w in lowered for w in words):
            return reason
    return "unreachable"


def is_connect_failure(message: str) -> bool:
    """Whether a librdkafka log line is a failure to reach a broker (a `FAIL` line that is
    not an idle connection closed by the broker)."""
    if not message.startswith("FAIL "):
        return False
    return classify(message) != "unreachable" or "connect to" in message.lower()


def failure_text(message: str) -> str:
    """A librdkafka line without its facility and thread: `FAIL [c] [thrd:x]: text`."""
    return message.split("]: ", 1)[1] if "]: " in message else message


class BrokerReach:
    def __init__(
        self,
        bootstrap_servers: str,
        log: Any,
        probe: Callable[[], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        settle_s: float = 1.0,
        probe_every_s: float = 5.0,
        remind_every_s: float = 30.0,
    ) -> None:
        """`probe` asks the cluster for metadata and raises when it cannot (no network
        here: it is called from `tick()` only)."""
        self.servers = bootstrap_servers
        self.log = log
        self.probe = probe
        self.clock = clock
        self.settle_s = settle_s
        self.probe_every_s = probe_every_s
        self.remind_every_s = remind_every_s
        self._lock = threading.Lock()
        self._since: float | None = None  # first failure not yet resolved by a probe
        self._next_probe = 0.0
        self._failures = 0  # since the last line
        self._latest = ""
        self._away_since: float | None = None  # once `broker_unreachable` is logged
        self._next_reminder = 0.0
        self._quiet_until = 0.0  # for `broker_connect_failed`

    def failed(self, text: str) -> None:
        """(any thread) A client could not reach a broker: `text` says why."""
        with self._lock:
            now = self.clock()
            self._failures += 1
            self._latest = text
            if self._since is None:
                self._since = now
                self._next_probe = now + self.settle_s

    def kafka_error(self, error: Any) -> None:
        """A client's `error_cb`: reaching errors are failures; others one line each."""
        from confluent_kafka import KafkaError

        code = error.code()
        if code == KafkaError._TRANSPORT:
            return  # a connection cut: its `FAIL` line says more, and comes here as well
        if code in (
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._RESOLVE,
            KafkaError._SSL,
            KafkaError._AUTHENTICATION,
            KafkaError.SASL_AUTHENTICATION_FAILED,
        ):
            self.failed(error.str())
            return
        self.log.warning("kafka_error", code=error.name(), error=error.str(), fatal=error.fatal())

    def reason(self) -> str | None:
        """Why `/readyz` is false, while the brokers are away."""
        with self._lock:
            if self._away_since is None:
                return None
            return (
                f"brokers {self.servers} unreachable ({classify(self._latest)}) for "
                f"{self.clock() - self._away_since:.0f}s: {self._latest}"
            )

    def tick(self) -> None:
        """(fetch loop) Probe the cluster when failures are due one, and say what it found."""
        if self._since is None:
            return
        now = self.clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self.probe_every_s
        try:
            self.probe()
        except Exception:  # noqa: BLE001  # any failure to get metadata: still away
            self._still_away(now)
        else:
            self._reached(now)

    def _still_away(self, now: float) -> None:
        with self._lock:
            failures, self._failures = self._failures, 0
            latest = self._latest
            if self._away_since is None:
                self._away_since = now
                self._next_reminder = now + self.remind_every_s
                first = True
            elif now >= self._next_reminder:
                self._next_reminder = now + self.remind_every_s
                first = False
            else:
                self._failures = failures
                return
            away_s = round(now - self._away_since)
        if first:
            self.log.error(
                "broker_unreachable",
                bootstrap_servers=self.servers,
                reason=classify(latest),
                error=latest,
                consequence="nothing is consumed or published until a broker answers; "
                "/readyz is false",
            )
        else:
            self.log.warning(
                "broker_still_unreachable",
                bootstrap_servers=self.servers,
                reason=classify(latest),
                error=latest,
                away_s=away_s,
                failures=failures,
            )

    def _reached(self, now: float) -> None:
        with self._lock:
            away_since, self._away_since = self._away_since, None
            failures, self._failures = self._failures, 0
            latest = self._latest
            self._since = None
            quiet = now < self._quiet_until
            if away_since is None and not quiet:
                self._quiet_until = now + self.remind_every_s
        if away_since is not None:
            self.log.info(
                "broker_reachable", bootstrap_servers=self.servers, away_s=round(now - away_since)
            )
        elif not quiet:
            # The cluster answers, but a broker of it did not: one line per reminder period.
            self.log.warning(
                "broker_connect_failed",
                bootstrap_servers=self.servers,
                reason=classify(latest),
                error=latest,
                failures=failures,
            )
