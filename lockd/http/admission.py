"""Admission of new resolutions: how many may run at once in this process, and how often one
token may start one.

A cache hit costs a read; a new resolution costs seconds of index traffic and CPU, so only new
ones are admitted here. Past `LOCKD_MAX_RESOLUTIONS` resolutions running in this process, a
new one is refused at once with 503 and `Retry-After`, rather than queued behind the others.
With `LOCKD_TOKEN_RESOLUTIONS_PER_MINUTE`, each token may start that many per minute (a token
bucket holding one minute's worth, refilled continuously), else 429 with `Retry-After`. Both
are per process: N replicas admit N times as much. A request for an input this process is
already resolving joins that resolution (single flight) and is admitted without a charge.
Admission runs on the event loop, so its counters need no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request

from lockd.errors import LockdError
from lockd.http.deps import in_thread
from lockd.http.problems import ServerBusy
from lockd.memory_cache import BoundedCache

__all__ = ["Admission", "RateLimited", "resolve_admitted"]

_T = TypeVar("_T")
# A busy server frees a slot when some resolution ends: a few seconds is the usual wait.
_BUSY_RETRY_SECONDS = 5
# Buckets of tokens seen recently; an evicted bucket is full again, which only ever admits more.
_BUCKETS = 10_000


class RateLimited(LockdError):
    code = "rate-limited"
    status = 429
    title = "Too many new resolutions for this token"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bucket:
    tokens: float
    at: float


class Admission:
    """The admission state of one process (one per app)."""

    def __init__(
        self, *, max_running: int, per_minute: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_running = max_running
        self.per_minute = per_minute
        self._clock = clock
        self._running: dict[str, int] = {}  # input digest → requests sharing its resolution here
        self._buckets: BoundedCache[str, _Bucket] = BoundedCache(_BUCKETS)

    @property
    def running(self) -> int:
        return len(self._running)

    def admit(self, digest: str, token_key: str) -> None:
        """Count a request for `digest` in, or raise `ServerBusy` or `RateLimited`; pair with `release`."""
        if digest in self._running:
            self._running[digest] += 1
            return
        if len(self._running) >= self.max_running:
            raise ServerBusy(
                f"{self.max_running} resolutions are running in this process; try again shortly",
                hint="retry after the Retry-After seconds, or raise LOCKD_MAX_RESOLUTIONS",
                context={"limit": self.max_running, "retry_after_seconds": _BUSY_RETRY_SECONDS},
            )
        self._take_token(token_key)
        self._running[digest] = 1

    def release(self, digest: str) -> None:
        left = self._running.get(digest, 0) - 1
        if left > 0:
            self._running[digest] = left
        else:
            self._running.pop(digest, None)

    def _take_token(self, token_key: str) -> None:
        if self.per_minute is None:
            return
        now = self._clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(token_key) or _Bucket(tokens=self.per_minute, at=now)
        tokens = min(self.per_minute, bucket.tokens + (now - bucket.at) * rate)
        if tokens < 1.0:
            self._buckets.put(token_key, _Bucket(tokens=tokens, at=now))
            wait = math.ceil((1.0 - tokens) / rate)
            raise RateLimited(
                f"this token may start {self.per_minute:g} new resolutions a minute; try again in {wait} s",
                hint="locks already stored are not limited; raise LOCKD_TOKEN_RESOLUTIONS_PER_MINUTE if this is expected",
                context={"per_minute": self.per_minute, "retry_after_seconds": wait},
            )
        self._buckets.put(token_key, _Bucket(tokens=tokens - 1.0, at=now))


async def resolve_admitted(request: Request, digest: str, work: Callable[[], _T]) -> _T:
    """Run `work`, a resolution of `digest`, on the resolution pool once admitted; else raise."""
    admission: Admission = request.app.state.admission
    admission.admit(digest, getattr(request.state, "token_key", "anonymous"))
    try:
        return await in_thread(request, work)
    finally:
        admission.release(digest)
