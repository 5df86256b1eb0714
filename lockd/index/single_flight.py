"""In-process single flight: one computation per key at a time, its result shared by every caller.

Concurrent requests for the same page, metadata or hash wait for the one already running
instead of fetching again, each for no longer than it may (`wait`: the caller's own deadline,
not the owner's). Nothing is remembered once the computation ends: that is the caches' job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs one computation per key at a time; concurrent callers share its result or its error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[K, Future[V]] = {}

    def run(self, key: K, compute: Callable[[], V], *, wait: float | None = None) -> V:
        """`compute()`'s result, or the running one's for `key`, awaited at most `wait` seconds.

        A caller that waited `wait` seconds in vain gets `TimeoutError`; the computation goes on.
        """
        with self._lock:
            running = self._running.get(key)
            owner = running is None
            if running is None:
                running = Future()
                self._running[key] = running
        if not owner:
            return running.result(timeout=None if wait is None else max(0.0, wait))
        try:
            value = compute()
        except BaseException as exc:
            running.set_exception(exc)
            raise
        else:
            running.set_result(value)
            return value
        finally:
            with self._lock:
                del self._running[key]

    def is_running(self, key: K) -> bool:
        with self._lock:
            return key in self._running
