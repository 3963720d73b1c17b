"""When a failed backend call is tried again, and how long to wait first (pure: no clock, no
Kafka; the replica supplies the wait).

A batch whose backend stage raises is retried `attempts` times, waiting an exponentially
growing, jittered backoff before each retry; then it is split and each record is retried
likewise; a record whose calls all failed becomes a dead letter that says how many calls it
had. An error that retrying cannot cure is permanent: `packflow.PermanentError`, an exception
type named in the settings, a preprocessing error (the configured preprocessors are
deterministic) or a validation error. A permanent error skips the retries; a batch that
raised one is still split, so that only the bad records are dead letters.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from packflow.errors import BackendError, PermanentError, ValidationError

__all__ = ["RetryInterrupted", "RetryPolicy", "root_cause"]


class RetryInterrupted(Exception):
    """Raised by a backoff wait when the replica is stopping: the batch is given up whole
    (nothing published, nothing committed: its records are read again)."""


def root_cause(exc: BaseException) -> BaseException:
    """What a backend stage itself raised (the SDK chains it under a BackendError)."""
    if isinstance(exc, BackendError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _names(kind: type) -> set[str]:
    return {n for c in kind.__mro__ for n in (c.__name__, f"{c.__module__}.{c.__qualname__}")}


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` retries after a first call; before retry n (from 1) a wait of
    `min(backoff_max_s, backoff_s * 2**(n-1))`, scaled by a random factor in [0.5, 1)
    ("equal jitter": retries of replicas that failed together spread out)."""

    attempts: int = 3
    backoff_s: float = 0.1
    backoff_max_s: float = 2.0
    # Exception types (class names, or module.Class) never retried, besides PermanentError.
    permanent: Collection[str] = ()
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry `retry` (1 for the first)."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * self.jitter())

    def retriable(self, exc: BaseException) -> bool:
        """Whether calling again may succeed where `exc` was raised."""
        if isinstance(exc, ValidationError) or getattr(exc, "stage", None) == "preprocess":
            return False
        cause = root_cause(exc)
        if isinstance(cause, (PermanentError, ValidationError)):
            return False
        return not (self.permanent and _names(type(cause)) & set(self.permanent))
