"""What an index client has done so far: requests, bytes, pages, metadata fetches, cache hits.

Reported by the CLI's progress line and by /metrics; counted under one lock by every fetch thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

__all__ = ["FetchCounters", "FetchStats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchStats:
    """What an `IndexClient` has done so far; reported by the CLI and /metrics."""

    requests: int = 0
    bytes_fetched: int = 0
    pages: int = 0
    metadata_fetches: int = 0
    range_requests: int = 0
    whole_downloads: int = 0
    cache_hits: int = 0


class FetchCounters:
    """The running totals behind `FetchStats`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {item.name: 0 for item in fields(FetchStats)}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> FetchStats:
        with self._lock:
            return FetchStats(**self._values)
