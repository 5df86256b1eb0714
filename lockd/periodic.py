"""The one "run this every N seconds until stopped" helper behind every background thread.

Progress reporting, lease renewal, drift heartbeats, the drift scheduler and the drift starter
all need the same three things: a daemon thread with a name that says what it does, a wait that
ends at once when stopped (an `Event`, never `time.sleep`), and an exception in one tick that is
logged without killing the loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Calls `action` every `interval` seconds on a daemon thread until `stop()`.

    `action` may return False to end the loop from inside. `first_delay` (default `interval`)
    is the wait before the first call; 0 calls at once. Usable as a context manager.
    """

    def __init__(
        self,
        name: str,
        interval: float | Callable[[], float],
        action: Callable[[], object],
        *,
        first_delay: float | None = None,
    ) -> None:
        self._name = name
        self._interval = interval
        self._action = action
        self._first_delay = first_delay
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ends the loop; waits up to `timeout` seconds for a running tick to finish."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Periodic:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_wait(self) -> float:
        interval = self._interval() if callable(self._interval) else self._interval
        return max(0.0, interval)

    def _loop(self) -> None:
        wait = self._next_wait() if self._first_delay is None else self._first_delay
        while not self._stopped.wait(wait):
            try:
                if self._action() is False:
                    return
            except Exception:
                log.exception("background task %s failed; it runs again in its next tick", self._name)
            wait = self._next_wait()
