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

from lockd.deadline import check_deadline, seconds_left
from lockd.errors import ResolutionTimeout

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A joined computation that another caller's deadline ended is run again while this much is left.
_RETRY_SLACK = 0.05


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

    def run_within_deadline(self, key: K, compute: Callable[[], V], doing: str) -> V:
        """`run`, each caller waiting only until its own deadline (`lockd.deadline`).

        A computation joined from a caller whose deadline ended it (`ResolutionTimeout`) is run
        again under this caller's deadline; waiting past this caller's raises `ResolutionTimeout`
        naming `doing`.
        """
        while True:
            try:
                return self.run(key, compute, wait=seconds_left())
            except TimeoutError:
                check_deadline(doing)
            except ResolutionTimeout:
                left = seconds_left()
                if left is not None and left <= _RETRY_SLACK:
                    raise
