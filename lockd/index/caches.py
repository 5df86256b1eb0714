"""What an index client remembers, and how much: the cache protocols and the in-memory caches.

`MetadataCache` and `HashCache` are what a client is given (in memory for the CLI, the database
in `lockd.store.caches` for the server). Every in-memory cache here is a `BoundedCache`: core
metadata bounded in bytes, hashes in entries, project pages in estimated bytes with a TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from lockd.memory_cache import BoundedCache
from lockd.simple import ProjectPage

__all__ = [
    "HashCache",
    "MetadataCache",
    "memory_hash_cache",
    "memory_metadata_cache",
    "page_cache",
    "page_size_estimate",
]

# Measured with tracemalloc on a parsed 3,900-file PEP 691 page: about 600 bytes of objects per
# file besides its strings; tag sets and versions are shared between files (see lockd.simple).
_FILE_OVERHEAD = 600
_VERSION_OVERHEAD = 200


class MetadataCache(Protocol):
    """Raw core metadata by the sha256 of the distribution file it came from. `put`'s result is ignored."""

    def get(self, sha256: str, /) -> bytes | None: ...

    def put(self, sha256: str, metadata: bytes, /) -> object: ...


class HashCache(Protocol):
    """sha256 of files whose index gives none, keyed by URL + size + ETag. `put`'s result is ignored."""

    def get(self, key: str, /) -> str | None: ...

    def put(self, key: str, sha256: str, /) -> object: ...


def memory_metadata_cache(max_bytes: int) -> BoundedCache[str, bytes]:
    """A process-local `MetadataCache` of at most `max_bytes` of metadata."""
    return BoundedCache(max_bytes, sizeof=len)


def memory_hash_cache(max_entries: int) -> BoundedCache[str, str]:
    """A process-local `HashCache` of at most `max_entries` hashes."""
    return BoundedCache(max_entries)


def page_size_estimate(page: ProjectPage) -> int:
    """About how many bytes `page` holds in memory (within 10 % on PyPI-shaped pages)."""
    size = _VERSION_OVERHEAD * len(page.foreign_versions)
    for file in page.files:
        size += _FILE_OVERHEAD + len(file.url) + len(file.filename) + len(file.metadata_url or "")
    return size


def page_cache(
    max_bytes: int, ttl: float, *, clock: Callable[[], float] = time.monotonic
) -> BoundedCache[str, ProjectPage]:
    """Project pages by URL for `ttl` seconds, at most `max_bytes` as `page_size_estimate` counts."""
    return BoundedCache(max_bytes, sizeof=page_size_estimate, ttl=ttl, clock=clock)
