"""Project pages: fetched by PEP 691 content negotiation (PEP 503 HTML accepted), parsed, kept.

A page is kept in memory for the TTL, bounded in bytes (PyPI here strips caching headers, so
revalidation would never hit); a body fetched again unchanged reuses its last parse
(`page_reuse`), and with a `PageStore` (the CLI's, on disk) pages outlive the process.
Concurrent asks for one page share one fetch, each ending at its own deadline. Without a store
(the server), the page child fetches a page as well as parsing it, unless its index has a
credential (`page_child`); whatever it does not answer with a page is fetched here again.

The parsers (`lockd.simple`'s json and html pages, with msgspec and datetime) load with the
first page parsed, not with this module: `lockd lock` builds its client and sends its first
request before them, and loads them while the page travels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockd.deadline import check_deadline
from lockd.errors import UnknownProject
from lockd.index.caches import PageBody, PageHead, PageStore, page_cache
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.page_reuse import ParsedPages
from lockd.index.page_worker import CHILD_FETCHES, FetchLimits, PageFetch, PageWorker
from lockd.index.single_flight import SingleFlight
from lockd.index.stats import FetchCounters
from lockd.simple.media_types import ACCEPT_HEADER
from lockd.simple.page_parse import parse_page

if TYPE_CHECKING:
    from packaging.utils import NormalizedName

    from lockd.simple import ProjectPage

__all__ = ["SHARED_FROM", "ProjectPages"]

# A page this process parsed before (its body's digest known) is fetched here, not by the child,
# while the child already has this many fetches: its 32 fetch threads busy and half as many
# waiting. Fetched again, a page is mostly bytes, TLS and a hash, and one process of them was the
# whole bound of a run with pages past their TTL (bench/cases/pypi-300 on a running server,
# `LOCKD_PAGE_TTL=0`: the child 0.65 s of CPU in a 0.68 s run, this process 0.28 s). Interleaved,
# medians of 8: pypi-300 580 ms against 738 ms with every page the child's, pypi-200 348 against
# 447 ms, pypi-25 71 against 80 ms; from 32 fetches 612 and 344 ms, from 64 (as many as the
# client's connections) 755 ms. A page parsed for the first time stays the child's, parse and all.
SHARED_FROM = CHILD_FETCHES + CHILD_FETCHES // 2


class ProjectPages:
    """The project pages one index client reads. Thread-safe."""

    def __init__(
        self,
        fetcher: Fetcher,
        options: ClientOptions,
        counters: FetchCounters,
        *,
        store: PageStore | None = None,
        worker: PageWorker | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._counters = counters
        self._max_files = options.max_page_files
        self._store = store  # the CLI's pages beyond this process; None on the server
        self._worker = worker
        self._pages = page_cache(options.page_cache_bytes, options.page_ttl)
        # A page past its TTL is fetched again; when its bytes have not changed, not parsed again.
        # With a page store, each parse is also kept there for the next process (`page_reuse`).
        # A big page is parsed by `worker`'s process, when there is one (`page_worker`).
        self._parsed = ParsedPages(
            options.page_cache_bytes, store=store, max_files=options.max_page_files, worker=worker
        )
        self._flight: SingleFlight[str, ProjectPage] = SingleFlight()
        # The server's pages are fetched by the child as well as parsed (`page_child`): the
        # page's bytes, TLS and HTTP parsing stay off this process's GIL. Never a page whose
        # index has a credential: credentials never leave this process (a redirect to such an
        # index answers the child 401, and this process asks again). Not with a store either:
        # the CLI's pages are fresh in it or checked against its forms here.
        self._credentials = options.credentials
        self._limits: FetchLimits | None = None
        if worker is not None and worker.fetches and store is None:
            self._limits = FetchLimits(
                timeout=options.timeout,
                max_connections=min(options.max_connections, CHILD_FETCHES),
                max_page_bytes=options.max_page_bytes,
                max_compression_ratio=options.max_compression_ratio,
                user_agent=options.user_agent,
            )

    @property
    def cached_bytes(self) -> int:
        """What the pages kept in memory are estimated to hold."""
        return self._pages.size

    def page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        """The project's files on one index; cached for the TTL.

        Raises `UnknownProject` on 404, `IndexUnavailable` when the index cannot answer (its
        `ResponseTooLarge` when the page is over a limit), `ResolutionTimeout` at the deadline.
        """
        url = page_url(index_url, name)
        cached = self._pages.get(url)
        if cached is not None:
            self._counters.add("cache_hits")
            return cached
        return self._flight.run_within_deadline(
            url, lambda: self._fetch(index_url, url, name), f"fetching {url}"
        )

    def holds(self, index_url: str, name: NormalizedName) -> bool:
        """Whether the page is in memory within its TTL, or fresh in the page store (the CLI's)."""
        url = page_url(index_url, name)
        return self._pages.get(url) is not None or (
            self._store is not None and self._store.head(url) is not None
        )

    def clear(self) -> None:
        """Forgets every page kept in memory."""
        self._pages.clear()

    def _fetch(self, index_url: str, url: str, name: NormalizedName) -> ProjectPage:
        stored = self._stored(url, name)
        if stored is not None:
            return stored
        if self._store is not None and self._worker is not None:
            # The store missed: pages come from the index this run, and the page process loads
            # its parsers on the other core while they travel. A run its store answers (warm)
            # starts none here (`lockd lock` starts it sooner still, before loading this client).
            self._worker.start_soon()
        fetched = self._fetched_by_child(url, name)
        if fetched is not None:
            return fetched
        with self._fetcher.request("GET", url, headers={"Accept": ACCEPT_HEADER}) as response:
            if response.status_code == 404:
                raise UnknownProject(
                    f"{name} is not on the index {index_url}",
                    hint="check the spelling; lockd takes the torch family only from the PyTorch index "
                    "and every other project only from the default index",
                    context={"project": name, "index": index_url, "url": url},
                )
            body = self._fetcher.read_ok(response, url, self._fetcher.page_limit)
            content_type = response.media_type
            final_url = str(response.url)
        self._counters.add("pages")
        page = self._parse(url, body, content_type, final_url, name)
        self._pages.put(url, page)
        if self._store is not None:  # only a page that parsed is kept
            formed = self._parsed.formed(url)
            if formed is None:
                self._store.put(url, PageBody(body=body, content_type=content_type, url=final_url))
            else:  # the form stands for the body, at a fraction of its size
                self._store.put_head(url, PageHead(sha256=formed, content_type=content_type, url=final_url))
        return page

    def _fetched_by_child(self, url: str, name: NormalizedName) -> ProjectPage | None:
        """The page as the child fetched and parsed it; None: fetch it here."""
        if self._limits is None or self._worker is None:
            return None
        if self._credentials and self._credentials.for_url(url) is not None:
            return None
        known = self._parsed.last_digest(url)
        if known is not None and self._worker.fetching >= SHARED_FROM:
            return None  # fetched again while the child has its share: here, on this core
        check_deadline(f"asking {url}")  # as the fetcher does: past the deadline nothing is asked
        job = PageFetch(
            url=url,
            name=name,
            max_files=self._max_files,
            known=known,
            parse_from=self._worker.from_bytes,
            limits=self._limits,
        )
        fetched = self._worker.fetch(job)
        if fetched is None:
            return None
        if fetched.body is not None:
            page = self._parse(url, fetched.body, fetched.content_type, fetched.final_url, name)
        else:
            formed = self._parsed.fetched(url, fetched, name)
            if formed is None:
                return None
            page = formed
        self._counters.add("requests")
        self._counters.add("bytes_fetched", fetched.body_bytes)
        self._counters.add("pages")
        self._pages.put(url, page)
        return page

    def _stored(self, url: str, name: NormalizedName) -> ProjectPage | None:
        """The page from the page store, parsed as if just fetched, while the store holds it fresh.

        Built from the form of its last parse when the store kept one (`page_reuse`): the body is
        then not even read."""
        if self._store is None:
            return None
        page = self._parsed.stored_page(url, name)
        if page is None:
            stored = self._store.get(url)
            if stored is None:
                return None
            page = self._parse(url, stored.body, stored.content_type, stored.url, name)
        self._counters.add("cache_hits")
        self._pages.put(url, page)
        return page

    def _parse(
        self, url: str, body: bytes, content_type: str, final_url: str, name: NormalizedName
    ) -> ProjectPage:
        """`body` as a page: its last parse when unchanged (`page_reuse`), else parsed now."""
        max_files = self._max_files
        return self._parsed.page(
            url,
            body,
            content_type,
            final_url,
            lambda: parse_page(body, content_type, final_url, name, url, max_files=max_files),
            name=name,
        )


def page_url(index_url: str, name: NormalizedName) -> str:
    """Where a project's page is on an index (PEP 503: the normalized name, then a slash)."""
    base = index_url if index_url.endswith("/") else index_url + "/"
    return f"{base}{name}/"
