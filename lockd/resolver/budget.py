"""A resolution within a time budget, and what it cost (seconds, packages, requests, bytes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.errors import ResolutionTimeout
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.resolver.provider import IndexSource
from lockd.resolver.resolution import ResolveReporter, resolve

__all__ = ["MeteredIndexSource", "ResolveStats", "timed_resolve"]


class _Traffic(Protocol):
    @property
    def requests(self) -> int: ...

    @property
    def bytes_fetched(self) -> int: ...


class MeteredIndexSource(IndexSource, Protocol):
    """An `IndexSource` that counts its traffic; `lockd.index.IndexClient` is one."""

    @property
    def stats(self) -> _Traffic: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveStats:
    """What one resolution cost."""

    seconds: float
    packages: int
    requests: int
    bytes_fetched: int


def timed_resolve(
    request: LockRequest,
    index: MeteredIndexSource,
    budget: float,
    reporter: ResolveReporter | None = None,
    *,
    preferences: Mapping[NormalizedName, Version] | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[Lock, ResolveStats]:
    """Resolve within `budget` seconds or raise `ResolutionTimeout` (the resolver checks CUDA mixing).

    `preferences`: versions tried first; `pool`: a running pool to share (see `resolve`)."""
    before = index.stats
    started = time.monotonic()
    deadline = started + budget
    lock = resolve(request, index, reporter=reporter, deadline=deadline, preferences=preferences, pool=pool)
    elapsed = time.monotonic() - started
    if elapsed > budget:
        raise ResolutionTimeout(
            f"resolution took {elapsed:.1f} s, over its budget of {budget:g} s",
            hint="retry later, or raise LOCKD_RESOLVE_TIMEOUT",
            context={"budget_seconds": budget},
        )
    after = index.stats
    stats = ResolveStats(
        seconds=elapsed,
        packages=len(lock.packages),
        requests=after.requests - before.requests,
        bytes_fetched=after.bytes_fetched - before.bytes_fetched,
    )
    return lock, stats
