"""A bounded cache of answered idempotency keys: repeats are dropped and counted.

Bounded in size and age (cachetools' TTLCache), so memory does not grow with the stream.
A repeat that misses the cache (evicted, or answered by another replica) is harmless: results
are deterministic, so it produces byte-identical output under the same key.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cachetools import TTLCache


class AnsweredKeys:
    def __init__(self, max_keys: int, ttl_s: float) -> None:
        self._cache: TTLCache[str, bool] = TTLCache(maxsize=max_keys, ttl=ttl_s)
        self._lock = threading.Lock()
        self.repeats = 0

    def claim(self, keys: Sequence[str]) -> list[bool]:
        """For each key: True if it is new (and now claimed), False if it is a repeat,
        including a repeat earlier in the same batch."""
        fresh = []
        with self._lock:
            cache = self._cache
            for key in keys:
                if key in cache:
                    fresh.append(False)
                else:
                    cache[key] = True
                    fresh.append(True)
            self.repeats += fresh.count(False)
        return fresh

    def release(self, keys: Sequence[str]) -> None:
        """Forget keys whose answer was not produced (dead-lettered, or work dropped on revoke),
        so a later copy of the record is processed again."""
        with self._lock:
            for key in keys:
                self._cache.pop(key, None)

    def __len__(self) -> int:
        return len(self._cache)
