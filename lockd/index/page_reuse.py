"""A project page parsed once per body: the same bytes fetched again give the page already parsed.

PyPI here sends no caching headers (no ETag, no Last-Modified), so a page past its TTL is
fetched whole again, and on a running server it is almost always byte-for-byte what was
parsed last time. Parsing costs far more than hashing (measured on PyPI's JSON pages during a
cold resolution: about 30 ms of CPU per MB to parse and build, 1 ms per MB to hash), so the
body's sha256 decides whether the last parse of that URL still stands. The page is always what the index sent now: only a body identical to the
one parsed, under the same content type and final URL, reuses its parse. Bounded in estimated
bytes like the page cache; nothing here expires by time, because nothing here is served
without being fetched again.

One page is parsed at a time per client. Parsing holds the GIL, so pages parsed side by side on
the prefetch threads finish no sooner in total, while each holds its whole decoded JSON (a dict
per file, ~16 MB for grpcio) at once. Measured on `bench/cases/pypi-300` (cold, real PyPI,
`lockd serve`'s worker, 5 runs each, interleaved): peak RSS 231-268 MiB parsing side by side,
234-241 MiB one at a time, with the same wall time. A thread waiting its turn still ends at the
resolution's deadline.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lockd.deadline import check_deadline, seconds_left
from lockd.index.caches import page_size_estimate
from lockd.memory_cache import BoundedCache
from lockd.simple import ProjectPage

__all__ = ["ParsedPages"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Parsed:
    digest: bytes  # sha256 of the body as received, decoded
    content_type: str
    page_url: str  # after redirects: relative file URLs resolve against it
    page: ProjectPage


class ParsedPages:
    """The last parse of each page URL, reused while the index keeps sending the same body. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self._parsed: BoundedCache[str, _Parsed] = BoundedCache(
            max_bytes, sizeof=lambda parsed: page_size_estimate(parsed.page)
        )
        self._parsing = threading.Lock()

    def page(
        self, url: str, body: bytes, content_type: str, page_url: str, parse: Callable[[], ProjectPage]
    ) -> ProjectPage:
        """The page `parse()` gives for `body`, or the one it gave for the same body of `url` last time."""
        digest = hashlib.sha256(body).digest()
        last = self._parsed.get(url)
        if (
            last is not None
            and last.digest == digest
            and last.content_type == content_type
            and last.page_url == page_url
        ):
            return last.page
        page = self._parse_alone(parse, page_url)
        self._parsed.put(url, _Parsed(digest=digest, content_type=content_type, page_url=page_url, page=page))
        return page

    def _parse_alone(self, parse: Callable[[], ProjectPage], page_url: str) -> ProjectPage:
        while True:
            left = seconds_left()
            if self._parsing.acquire(timeout=-1 if left is None else max(left, 0.0)):
                break
            check_deadline(f"waiting to parse {page_url}")
        try:
            return parse()
        finally:
            self._parsing.release()
