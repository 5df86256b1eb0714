"""What an index client remembers, and how much: the cache protocols and the in-memory caches.

`MetadataCache` and `HashCache` are what a client is given (in memory by default, the database
in `lockd.store.caches` for the server, a file in the user's cache directory for the CLI); a
`PageStore` (the CLI's) keeps project pages as the index sent them, beyond one process. Every in-memory cache here is a `BoundedCache`: core
metadata bounded in bytes, hashes in entries, project pages in estimated bytes with a TTL.

Metadata is remembered by `MetadataKey`, the file's identity on its index (the page that listed
it, its filename, the sha256 claimed for it), never by the claimed hash alone: a hostile index
that lists its file with another file's hash gets a key of its own, so what it serves can never
answer for a file of another project or index.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lockd.memory_cache import BoundedCache

if TYPE_CHECKING:
    from lockd.simple import DistFile, ProjectPage

__all__ = [
    "HashCache",
    "MetadataCache",
    "MetadataKey",
    "PageBody",
    "PageHead",
    "PageStore",
    "memory_hash_cache",
    "memory_metadata_cache",
    "page_cache",
    "page_size_estimate",
]

# Measured with tracemalloc on a parsed 3,900-file PEP 691 page: about 600 bytes of objects per
# file besides its strings; tag sets and versions are shared between files (see lockd.simple).
_FILE_OVERHEAD = 600
_VERSION_OVERHEAD = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataKey:
    """A distribution file's identity on its index: the metadata cache's key."""

    page_url: str  # the project page that listed the file: its index and project
    filename: str
    sha256: str  # as the index claims it: files are immutable, so one name has one hash

    @classmethod
    def of(cls, file: DistFile) -> MetadataKey | None:
        """The key of `file`, or None when its index gives no hash (such metadata is never shared)."""
        if file.sha256 is None:
            return None
        return cls(page_url=file.index_url or file.url, filename=file.filename, sha256=file.sha256)

    @property
    def digest(self) -> str:
        """sha256 of the three parts, unambiguously joined: a fixed-size database key."""
        joined = json.dumps([self.page_url, self.filename, self.sha256], ensure_ascii=True)
        return hashlib.sha256(joined.encode("ascii")).hexdigest()


class MetadataCache(Protocol):
    """Raw core metadata by the identity of the file it came from. `put`'s result is ignored.

    Only metadata checked against its file (`lockd.index_text.check_metadata`) is put.
    """

    def get(self, key: MetadataKey, /) -> bytes | None: ...

    def put(self, key: MetadataKey, metadata: bytes, /) -> object: ...


class HashCache(Protocol):
    """sha256 of files whose index gives none, keyed by URL + size + ETag. `put`'s result is ignored."""

    def get(self, key: str, /) -> str | None: ...

    def put(self, key: str, sha256: str, /) -> object: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PageBody:
    """A project page as its index sent it: what a `PageStore` keeps (the client parses it)."""

    body: bytes
    content_type: str
    url: str  # the page's URL after redirects: relative file links resolve against it


@dataclass(frozen=True, slots=True, kw_only=True)
class PageHead:
    """A stored page without its body: enough to find the parsed form kept for that body."""

    sha256: str  # the body's, as hex
    content_type: str
    url: str


class PageStore(Protocol):
    """Project pages by the URL asked for, each fresh for the store's TTL. `put`'s result is ignored.

    `get` and `head` answer only while the page is fresh; only pages the client could parse are
    put. Beside each page the store may keep a form of its parse (`lockd.simple.page_form`),
    by the same URL; the form says which body it stands for, so it is kept past the page's TTL
    (a page fetched again with the same bytes reuses it) and a store may drop it at any time.
    """

    def get(self, url: str, /) -> PageBody | None: ...

    def put(self, url: str, page: PageBody, /) -> object: ...

    def put_head(self, url: str, head: PageHead, /) -> object:
        """Keeps a page by its head alone, when the form kept beside it stands for its body: `head`
        answers for it within the TTL, `get` does not (a form that cannot be read means a fetch)."""
        ...

    def head(self, url: str, /) -> PageHead | None: ...

    def get_form(self, url: str, /) -> bytes | None: ...

    def put_form(self, url: str, form: bytes, /) -> object: ...


def memory_metadata_cache(max_bytes: int) -> BoundedCache[MetadataKey, bytes]:
    """A process-local `MetadataCache` of at most `max_bytes` of metadata."""
    return BoundedCache(max_bytes, sizeof=len)


def memory_hash_cache(max_entries: int) -> BoundedCache[str, str]:
    """A process-local `HashCache` of at most `max_entries` hashes."""
    return BoundedCache(max_entries)


def page_size_estimate(page: ProjectPage) -> int:
    """About how many bytes `page` holds in memory (within 10 % on PyPI-shaped pages).

    Kept with the page: a server with LOCKD_PAGE_TTL=0 caches every reused page again on each
    resolution, and walking its files each time was 4 % of a warm resolution's samples.
    """
    known = page.derived.get(page_size_estimate)
    if isinstance(known, int):
        return known
    from lockd.simple.files import files_text_length  # noqa: PLC0415  # loaded with the first page

    # Never reads a file's details to count them.
    size = _VERSION_OVERHEAD * len(page.foreign_versions) + _FILE_OVERHEAD * page.file_count
    size += files_text_length(page)
    page.derived[page_size_estimate] = size
    return size


def page_cache(
    max_bytes: int, ttl: float, *, clock: Callable[[], float] = time.monotonic
) -> BoundedCache[str, ProjectPage]:
    """Project pages by URL for `ttl` seconds, at most `max_bytes` as `page_size_estimate` counts."""
    return BoundedCache(max_bytes, sizeof=page_size_estimate, ttl=ttl, clock=clock)
