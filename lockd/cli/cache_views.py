"""What the index client sees of `lockd lock`'s cache file (`lockd.cli.user_cache`): three views.

Each view answers one of the client's protocols (`MetadataCache`, `PageStore`, `HashCache`) from
entries of its own kind, under its own key: metadata under the exact identity of the file it
was read from, pages under the URL asked for (served only within the TTL, with the sha256 of the
body they stand for), a page's form under the same URL, hashes under URL + size + ETag.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from lockd.index.caches import MetadataKey, PageBody, PageHead

__all__ = ["FORM", "HASH", "METADATA", "PAGE", "Entries", "Entry", "HashView", "MetadataView", "PageView"]

METADATA = "metadata"
PAGE = "page"
FORM = "form"  # a page's parsed form, by the page's URL
HASH = "hash"

Entry = tuple[bytes, str, float]  # value, detail, stored_at


class Entries(Protocol):
    """The cache file by (kind, key), as `UserCache` keeps it."""

    def get(self, kind: str, key: str, /) -> Entry | None: ...
    def head(self, kind: str, key: str, /) -> tuple[str, float] | None: ...
    def put(self, kind: str, key: str, value: bytes, detail: str = "", /) -> None: ...
    def page_is_fresh(self, stored_at: float, /) -> bool: ...
    @property
    def keeps_pages(self) -> bool: ...


class MetadataView:
    """The cache as a `lockd.index.MetadataCache`: the exact file identity is the key."""

    def __init__(self, cache: Entries) -> None:
        self._cache = cache

    def get(self, key: MetadataKey, /) -> bytes | None:
        entry = self._cache.get(METADATA, _identity(key))
        return None if entry is None else entry[0]

    def put(self, key: MetadataKey, metadata: bytes, /) -> None:
        self._cache.put(METADATA, _identity(key), metadata)


class PageView:
    """The cache as a `lockd.index.PageStore`: pages by the URL asked for, within the TTL, and their forms."""

    def __init__(self, cache: Entries) -> None:
        self._cache = cache

    def get(self, url: str, /) -> PageBody | None:
        entry = self._cache.get(PAGE, url) if self._cache.keeps_pages else None
        detail = None if entry is None else self._fresh(entry[1], entry[2])
        if entry is None or detail is None:
            return None
        content_type, page_url, sha256 = detail
        # A page kept by its head alone (`put_head`) has no body here; nor has a damaged entry.
        if sha256 is not None and hashlib.sha256(entry[0]).hexdigest() != sha256:
            return None
        return PageBody(body=entry[0], content_type=content_type, url=page_url)

    def head(self, url: str, /) -> PageHead | None:
        found = self._cache.head(PAGE, url) if self._cache.keeps_pages else None
        detail = None if found is None else self._fresh(*found)
        if detail is None or detail[2] is None:  # no sha256: not written by this version, no form matches
            return None
        return PageHead(sha256=detail[2], content_type=detail[0], url=detail[1])

    def _fresh(self, detail: str, stored_at: float) -> tuple[str, str, str | None] | None:
        """A page entry's detail (`_page_detail`) while the entry is within the TTL."""
        return _page_detail(detail) if self._cache.page_is_fresh(stored_at) else None

    def put(self, url: str, page: PageBody, /) -> None:
        if self._cache.keeps_pages:
            sha256 = hashlib.sha256(page.body).hexdigest()
            self._cache.put(PAGE, url, page.body, f"{page.content_type} {page.url}{_SHA256}{sha256}")

    def put_head(self, url: str, head: PageHead, /) -> None:
        # The body is most of a page's bytes (a cold 300-pin run: 90 MB of bodies, 25 MB of forms).
        if self._cache.keeps_pages:
            self._cache.put(PAGE, url, b"", f"{head.content_type} {head.url}{_SHA256}{head.sha256}")

    # Forms are kept whatever the page TTL (0 with credentials too): one is used only for the very
    # body it was made from, which the run must have fetched, as metadata is bound to its file. So
    # a page fetched again (LOCKD_PAGE_TTL=0, or past its TTL) with the same bytes is not parsed.

    def get_form(self, url: str, /) -> bytes | None:
        entry = self._cache.get(FORM, url)
        return None if entry is None else entry[0]

    def put_form(self, url: str, form: bytes, /) -> None:
        self._cache.put(FORM, url, form)


_SHA256 = " sha256="


def _page_detail(detail: str) -> tuple[str, str, str | None]:
    """A page entry's content type, final URL and body sha256 (None if the detail names none)."""
    content_type, _, rest = detail.partition(" ")
    page_url, found, sha256 = rest.rpartition(_SHA256)
    if not found or len(sha256) != 64 or sha256.strip("0123456789abcdef"):
        return content_type, rest, None
    return content_type, page_url, sha256


class HashView:
    """The cache as a `lockd.index.HashCache`: sha256 by URL + size + ETag."""

    def __init__(self, cache: Entries) -> None:
        self._cache = cache

    def get(self, key: str, /) -> str | None:
        entry = self._cache.get(HASH, key)
        return None if entry is None else entry[0].decode("ascii", "replace")

    def put(self, key: str, sha256: str, /) -> None:
        self._cache.put(HASH, key, sha256.encode("ascii"))


def _identity(key: MetadataKey) -> str:
    return json.dumps([key.page_url, key.filename, key.sha256], ensure_ascii=True)
