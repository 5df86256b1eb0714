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
resolution's deadline. A page of `ClientOptions.page_worker_from` bytes or more goes to the
client's child process instead (`page_worker`), which takes them one at a time too and answers
the page's form: on a cold 200-pin `lockd lock`, parse and form (~1.4 s of CPU) then run on the
other core, and building the pages from their forms costs this process ~0.25 s.

With a `PageStore` (the CLI's, on disk), each parse is also kept there as a form
(`lockd.simple.page_form`) for the next process: a stored page still fresh is built from its
form without reading its body (`stored_page`), and a page fetched again whose bytes did not change
is built from it instead of parsed. Measured on `bench/cases/pypi-200`'s 204 pages (73 MB of
JSON, 95,000 files kept; one process, CPU time, a shared machine): parsing 1.1-1.8 s, building
the pages from forms 0.4-0.6 s, writing the forms 0.3-0.5 s (paid once, where the page is parsed).
A form is bound to everything the parse was given (`_source`): body, content type, final URL,
project, file limit; `page_form` adds the parser's own identity. `page_form` loads with the
first form read or written: it brings the page parsers, which `lockd lock` loads after sending
its first request. Since a page parsed here must then also be written as a form, which is what
the child answers anyway, with a store the child takes smaller pages too (`STORED_WORKER_FROM`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockd.deadline import check_deadline, seconds_left
from lockd.index.caches import PageStore, page_size_estimate
from lockd.index.page_worker import FetchedPage, PageJob, PageWorker, page_source
from lockd.memory_cache import BoundedCache

if TYPE_CHECKING:
    from lockd.simple import ProjectPage

__all__ = ["STORED_WORKER_FROM", "ParsedPages"]

# The smallest page sent to the child when a store keeps forms (the CLI's cache), unless
# `ClientOptions.page_worker_from` is smaller still. Measured on `bench/cases/pypi-200` (98 of its
# pages are 16-128 KiB, 5.7 MB in all): cold `lockd lock`, interleaved, medians of 6: 2.17 s
# against 2.46 s with 128 KiB (another round: 2.52 s against 2.70 s); pypi-25 (few such pages)
# 0.700 s against 0.705 s, 10 each. On the server, with no store, 16 KiB changed nothing.
STORED_WORKER_FROM = 16 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class _Parsed:
    digest: bytes  # sha256 of the body as received, decoded
    content_type: str
    page_url: str  # after redirects: relative file URLs resolve against it
    page: ProjectPage
    formed: bool = False  # the store holds a form of this parse (read from it, or written)


class ParsedPages:
    """The last parse of each page URL, reused while the index keeps sending the same body. Thread-safe.

    `store`: where forms of parses outlive the process; `max_files`: the parse's file limit.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        store: PageStore | None = None,
        max_files: int | None = None,
        worker: PageWorker | None = None,
    ) -> None:
        self._parsed: BoundedCache[str, _Parsed] = BoundedCache(
            max_bytes, sizeof=lambda parsed: page_size_estimate(parsed.page)
        )
        self._parsing = threading.Lock()
        self._store = store
        self._max_files = max_files
        self._form_bytes = max_bytes  # a form is smaller than the page it builds
        self._worker = worker  # parses big pages in a process of its own, answering their forms
        # With a store, a page parsed here is also written as a form, which is what the child
        # answers: pages from `STORED_WORKER_FROM` bytes go to it (see the module's docstring).
        self._worker_from = 0 if worker is None else worker.from_bytes
        if store is not None:
            self._worker_from = min(self._worker_from, STORED_WORKER_FROM)

    def page(
        self,
        url: str,
        body: bytes,
        content_type: str,
        page_url: str,
        parse: Callable[[], ProjectPage],
        *,
        name: str,
    ) -> ProjectPage:
        """The page `parse()` gives for `body`, or the one it gave for the same body of `url` last time.

        `name`: the project `parse` reads the page as.
        """
        digest = hashlib.sha256(body).digest()
        last = self._last(url, digest, content_type, page_url)
        if last is not None:
            return last
        page = self._from_store(url, name, digest.hex(), content_type, page_url)
        formed = page is not None
        if page is None:
            source = self._source(url, name, digest.hex(), content_type, page_url)
            page = self._from_worker(
                url, body, name=name, content_type=content_type, page_url=page_url, source=source
            )
            formed = page is not None and self._store is not None
            if page is None:
                page = self._parse_alone(parse, page_url)
                formed = self._keep_form(url, page, source)
        parsed = _Parsed(
            digest=digest, content_type=content_type, page_url=page_url, page=page, formed=formed
        )
        self._parsed.put(url, parsed)
        return page

    def last_digest(self, url: str) -> str | None:
        """The sha256 (hex) of the body last parsed for `url`, if that parse is still kept."""
        last = self._parsed.get(url)
        return None if last is None else last.digest.hex()

    def fetched(self, url: str, fetched: FetchedPage, name: str) -> ProjectPage | None:
        """The page the child fetched (`PageWorker.fetch`): the last parse of the same body, or
        the one built from the child's form; None when neither stands (the caller fetches it)."""
        digest = bytes.fromhex(fetched.sha256)
        content_type, page_url = fetched.content_type, fetched.final_url
        last = self._last(url, digest, content_type, page_url)
        if last is not None or fetched.form is None:
            return last  # None: the child saw the body named as the last parse, since dropped
        source = self._source(url, name, fetched.sha256, content_type, page_url)
        page = self._from_form(url, fetched.form, source)
        if page is not None:
            formed = self._store is not None
            parsed = _Parsed(
                digest=digest, content_type=content_type, page_url=page_url, page=page, formed=formed
            )
            self._parsed.put(url, parsed)
        return page

    def formed(self, url: str) -> str | None:
        """The sha256 (hex) of the body last parsed for `url` when the store holds a form of that parse."""
        last = self._parsed.get(url)
        return last.digest.hex() if last is not None and last.formed else None

    def stored_page(self, url: str, name: str) -> ProjectPage | None:
        """The store's fresh page of `url` built from its form, without reading its body; None if it has none."""
        head = None if self._store is None else self._store.head(url)
        if head is None:
            return None
        page = self._from_store(url, name, head.sha256, head.content_type, head.url)
        if page is not None:
            # Remembered as if parsed here: the body, fetched again unchanged, reuses it at once.
            digest = bytes.fromhex(head.sha256)  # a form stood for it, so it is the hex of a sha256
            parsed = _Parsed(
                digest=digest, content_type=head.content_type, page_url=head.url, page=page, formed=True
            )
            self._parsed.put(url, parsed)
        return page

    def _last(self, url: str, digest: bytes, content_type: str, page_url: str) -> ProjectPage | None:
        """The last parse of `url`, if it was of this body, under this content type and final URL."""
        last = self._parsed.get(url)
        if (
            last is None
            or last.digest != digest
            or last.content_type != content_type
            or last.page_url != page_url
        ):
            return None
        return last.page

    def _from_store(
        self, url: str, name: str, sha256: str, content_type: str, page_url: str
    ) -> ProjectPage | None:
        form = None if self._store is None else self._store.get_form(url)
        if form is None:
            return None
        from lockd.simple.page_form import decode_page  # noqa: PLC0415 (see the module's docstring)

        source = self._source(url, name, sha256, content_type, page_url)
        return decode_page(form, source, max_bytes=self._form_bytes)

    def _from_worker(
        self, url: str, body: bytes, *, name: str, content_type: str, page_url: str, source: str
    ) -> ProjectPage | None:
        """The page built from the form the worker made of `body`; None: parse it here."""
        worker = self._worker
        if worker is None or len(body) < self._worker_from or self._max_files is None:
            return None
        job = PageJob(
            url=url,
            name=name,
            content_type=content_type,
            final_url=page_url,
            max_files=self._max_files,
            source=source,
        )
        form = worker.form(job, body)
        return None if form is None else self._from_form(url, form, source)

    def _from_form(self, url: str, form: bytes, source: str) -> ProjectPage | None:
        """The page a form from the child builds, every field checked as for one read from the store
        (its digest is not: the pipe cannot damage it); kept in the store when there is one."""
        from lockd.simple.page_form import decode_page  # noqa: PLC0415 (see the module's docstring)

        page = decode_page(form, source, max_bytes=self._form_bytes, from_pipe=True)
        if page is not None and self._store is not None:
            self._store.put_form(url, form)
        return page

    def _keep_form(self, url: str, page: ProjectPage, source: str) -> bool:
        if self._store is None:
            return False
        from lockd.simple.page_form import encode_page  # noqa: PLC0415 (see the module's docstring)

        form = encode_page(page, source)
        if form is None:
            return False
        self._store.put_form(url, form)
        return True

    def _source(self, url: str, name: str, sha256: str, content_type: str, page_url: str) -> str:
        return page_source(url, name, sha256, content_type, page_url, self._max_files)

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
