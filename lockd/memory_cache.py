"""The one bounded, thread-safe in-memory cache: LRU by total size, with an optional time to live.

Every process-local cache in lockd is one of these (project pages, metadata by file identity,
rendered lock files, token scopes, the hot layer in front of the database caches), so each has
a bound an operator can reason about: `max_size` is counted with `sizeof` (1 per entry unless
given, bytes for pages and files), and an entry larger than `max_size // 8` is never kept, so
one huge value cannot flush everything else.

Cost: `get` and `put` are O(1) amortised; eviction pops from the cold end. Writes hold the
cache's lock. A read does not wait for it: it looks the key up as it stands (one dict lookup,
atomic as any other), and marks the entry recently used only if the lock is free at that moment,
so under contention the order is approximately LRU. A read that waited had made a convoy: a
thread holding the lock can lose the GIL inside it, and every other thread that reads then
blocks until the holder is scheduled again. py-spy over a cold 300-pin `POST /lock` found the
server's fetch threads waiting there more than anywhere else, the resolving thread among them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(_value: object) -> int:
    return 1


class BoundedCache(Generic[K, V]):
    """An LRU of at most `max_size` (as measured by `sizeof`), entries expiring after `ttl` seconds."""

    def __init__(
        self,
        max_size: int,
        *,
        sizeof: Callable[[V], int] = _one,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._sizeof = sizeof
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, tuple[V, int, float]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The current total, as measured by `sizeof`."""
        with self._lock:
            return self._size

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: K) -> V | None:
        """The live value under `key`, marked as recently used when the lock is free; None when absent or expired."""
        found = self._items.get(key)
        if found is None:
            return None
        value, size, expires = found
        if expires <= self._clock():
            with self._lock:
                if self._items.get(key) is found:  # not replaced meanwhile
                    del self._items[key]
                    self._size -= size
            return None
        if self._lock.acquire(blocking=False):
            try:
                if self._items.get(key) is found:  # not evicted or replaced meanwhile
                    self._items.move_to_end(key)
            finally:
                self._lock.release()
        return value

    def put(self, key: K, value: V) -> bool:
        """Keeps `value` under `key` (replacing any); False when it is too large to keep at all."""
        size = self._sizeof(value)
        expires = self._clock() + self._ttl if self._ttl is not None else float("inf")
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]
            if size > max(1, self._max_size // 8) and size > 1:
                return False
            self._items[key] = (value, size, expires)
            self._size += size
            while self._size > self._max_size and self._items:
                _, (_, evicted, _) = self._items.popitem(last=False)
                self._size -= evicted
            return True

    def pop(self, key: K) -> V | None:
        """Forgets `key`; returns what was there, expired or not."""
        with self._lock:
            found = self._items.pop(key, None)
            if found is None:
                return None
            self._size -= found[1]
            return found[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0
