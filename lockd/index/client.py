"""`IndexClient`: project pages, core metadata and file hashes from Simple Repository API indexes.

Project pages are `pages`' job (PEP 691 content negotiation with a PEP 503 HTML fallback, kept
for a TTL). Core metadata is read by `metadata_reader` (PEP 658 `.metadata`, ranges into
the wheel, a wheel streamed up to its METADATA, an sdist's static PKG-INFO), then used only once
it is bound to its file (`lockd.index_text.check_metadata`: its Name and Version are the
filename's) and remembered only under that file's identity on its index (`MetadataKey`);
metadata an index gives no hash for stays with this client. A file whose metadata is unusable
is refused with the reason (`UnusableMetadata`), and the refusal remembered.

Every read is bounded (`ClientOptions.max_*`) and ends at the caller's deadline
(`lockd.deadline`), also while it waits for another caller's identical fetch: those coalesce,
and `prefetch_metadata` runs them on a thread pool so the resolver rarely waits. This module
decides what to fetch and what to remember; `fetcher` does the HTTP. The metadata reader is
made with the first metadata read: `lockd lock`'s first request is for a page, sent before the
archive readers load.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from contextlib import suppress
from dataclasses import replace
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from packaging.utils import NormalizedName

from lockd.errors import (
    LockdError,
    ResponseTooLarge,
    SdistNeedsBuild,
    UnusableMetadata,
)
from lockd.index.caches import (
    HashCache,
    MetadataCache,
    MetadataKey,
    PageStore,
    memory_hash_cache,
    memory_metadata_cache,
)
from lockd.index.credentials import IndexCredentials
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.page_worker import PageWorker
from lockd.index.pages import ProjectPages
from lockd.index.single_flight import SingleFlight
from lockd.index.stats import FetchCounters, FetchStats
from lockd.index.threads import WorkerPool
from lockd.index_text import check_metadata
from lockd.memory_cache import BoundedCache
from lockd.target import lockable_anywhere

if TYPE_CHECKING:
    from lockd.index.metadata_reader import MetadataReader
    from lockd.sdist_sources import MetadataBuilder
    from lockd.simple import DistFile, ProjectPage

__all__ = ["IndexClient"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_IDENTITY = {"Accept-Encoding": "identity"}
# As many as a resolution's fetch threads can finish around one check of the cache, and more.
_JUST_LOADED = 256

# A file as this client keeps it apart from others: listing page, URL, name and claimed hash.
_FileIdentity = tuple[str, str, str, str | None]


def _identity(file: DistFile) -> _FileIdentity:
    return (file.index_url, file.url, file.filename, file.sha256)


class IndexClient:
    """Reads Simple Repository API indexes over HTTP. Thread-safe; use as a context manager.

    Build it with `from_options` (settings give `Settings.client_options()`); the keyword
    arguments override single options, for tests and the benchmark.
    """

    def __init__(
        self,
        options: ClientOptions | None = None,
        *,
        metadata_cache: MetadataCache | None = None,
        hash_cache: HashCache | None = None,
        timeout: float | None = None,
        max_connections: int | None = None,
        page_ttl: float | None = None,
        user_agent: str | None = None,
        credentials: IndexCredentials | None = None,
        metadata_builder: MetadataBuilder | None = None,
        page_store: PageStore | None = None,
        workers: WorkerPool | None = None,
        page_worker: PageWorker | None = None,
    ) -> None:
        base = ClientOptions() if options is None else options
        self.options: ClientOptions = replace(
            base,
            timeout=base.timeout if timeout is None else timeout,
            max_connections=base.max_connections if max_connections is None else max_connections,
            page_ttl=base.page_ttl if page_ttl is None else page_ttl,
            user_agent=base.user_agent if user_agent is None else user_agent,
            credentials=base.credentials if credentials is None else credentials,
        )
        options = self.options
        self._counters = FetchCounters()
        self._fetcher = Fetcher(options, self._counters)
        # LOCKD_SDIST_METADATA=sandbox: the builder is the last resort for sdists (lockd.sdist_sources).
        self._metadata_builder = metadata_builder
        self._reader: MetadataReader | None = None  # made with the first metadata read (`_metadata_reader`)
        self._reader_lock = threading.Lock()
        # `is None`, not `or`: an empty cache has a length of 0, so it is falsy, and is still the cache.
        if metadata_cache is None:
            metadata_cache = memory_metadata_cache(options.metadata_cache_bytes)
        if hash_cache is None:
            hash_cache = memory_hash_cache(options.hash_cache_entries)
        self._metadata_cache: MetadataCache = metadata_cache
        self._hash_cache: HashCache = hash_cache
        # `page_worker` given: another client's, which closes it (as `workers`). Otherwise this
        # client's own, whose process starts with the first page big enough to need it.
        self._owns_page_worker = page_worker is None
        if page_worker is None:
            # The server's (no store): its child fetches pages too (`pages`).
            page_worker = PageWorker.for_options(options, fetches=page_store is None)
        self._page_worker = page_worker
        # `page_store`: the CLI's pages beyond this process; None on the server.
        self._pages = ProjectPages(
            self._fetcher, options, self._counters, store=page_store, worker=page_worker
        )
        # Files without an index hash cannot enter the metadata cache; their metadata, and
        # refusals of any file, are remembered by the file's identity, for this client only.
        self._metadata_unhashed: BoundedCache[_FileIdentity, bytes] = BoundedCache(
            options.metadata_by_url_bytes, sizeof=len
        )
        self._refusals: BoundedCache[_FileIdentity, LockdError] = BoundedCache(options.refusal_entries)
        # Metadata this client loaded last, for a fetch that checked the cache just before one of
        # them arrived and started its flight just after it ended. Asking the metadata cache
        # again instead is a database query per file on the server, each a wait for the GIL
        # between fetch threads: half the queries of a cold resolution, on its critical path.
        self._just_loaded: BoundedCache[_FileIdentity, bytes] = BoundedCache(_JUST_LOADED)
        self._metadata_flight: SingleFlight[_FileIdentity, bytes] = SingleFlight()
        self._hash_flight: SingleFlight[str, str] = SingleFlight()
        # `workers` given: another client's (a service's fresh clients share its threads), and
        # that client closes them. Otherwise this client's own, as wide as the connections: a
        # prefetch thread mostly waits on the network.
        self._owns_workers = workers is None
        if workers is None:
            # Every page is filtered by a table built once per process (~0.3 s): built on the
            # pool once it runs, so a server has it before its first request and the CLI while it
            # waits on the network.
            workers = WorkerPool(
                max(1, options.max_connections),
                "lockd-fetch",
                warm_up=partial(lockable_anywhere, frozenset()),
            )
        self._workers = workers
        self._closed = False

    @classmethod
    def from_options(
        cls,
        options: ClientOptions,
        *,
        metadata_cache: MetadataCache | None = None,
        hash_cache: HashCache | None = None,
        metadata_builder: MetadataBuilder | None = None,
        page_store: PageStore | None = None,
        workers: WorkerPool | None = None,
        page_worker: PageWorker | None = None,
    ) -> IndexClient:
        """A client configured by `options`, remembering metadata, hashes and pages in the given caches.

        `workers`, `page_worker`: the threads and page process of another client that outlives
        this one, else its own."""
        return cls(
            options,
            metadata_cache=metadata_cache,
            hash_cache=hash_cache,
            metadata_builder=metadata_builder,
            page_store=page_store,
            workers=workers,
            page_worker=page_worker,
        )

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancels queued prefetches, waits for running ones, ends its own threads, closes connections."""
        if self._closed:
            return
        self._closed = True
        if self._owns_workers:
            self._workers.close()
        if self._owns_page_worker and self._page_worker is not None:
            self._page_worker.close()
        self._fetcher.close()

    @property
    def stats(self) -> FetchStats:
        return self._counters.snapshot()

    def start_page_worker(self) -> None:
        """Starts the page process in the background now (a serving worker at start), not with
        the first page big enough to need it."""
        if self._page_worker is not None:
            self._page_worker.start_soon()

    @property
    def page_worker(self) -> PageWorker | None:
        """The process big pages are parsed in, shared with the clients made from this one."""
        return self._page_worker

    @property
    def workers(self) -> WorkerPool:
        """The threads this client prefetches on; a resolution runs its prefetch walk there too."""
        return self._workers

    # -- project pages -------------------------------------------------------------------

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        """The project's files on one index; cached for `page_ttl` seconds (`pages.ProjectPages.page`)."""
        return self._pages.page(index_url, name)

    def holds_page(self, index_url: str, name: NormalizedName) -> bool:
        """Whether the project's page is in memory or the page store within its TTL: `project_page`
        would fetch nothing."""
        return self._pages.holds(index_url, name)

    def drop_pages(self) -> None:
        """Forgets every cached project page (drift checks want the index as it is now)."""
        self._pages.clear()

    # -- core metadata -------------------------------------------------------------------

    def fetch_metadata(self, file: DistFile) -> bytes:
        """Raw METADATA (wheels) or static PKG-INFO (sdists) of one file, checked against it.

        Costs nothing when cached; otherwise one `.metadata` GET, or (usually) one to three range
        requests into a wheel, or one streamed download. Joins an in-flight prefetch. Raises
        `UnusableMetadata` (`MetadataMismatch` among them) when the file's metadata cannot be used.
        """
        cached = self._cached_metadata(file)
        if cached is not None:
            self._counters.add("cache_hits")
            return cached
        return self._uncached_metadata(file)

    def _uncached_metadata(self, file: DistFile) -> bytes:
        """The file's metadata loaded once however many ask at a time (a cache miss was seen)."""
        return self._metadata_flight.run_within_deadline(
            _identity(file),
            lambda: self._load_metadata(file),
            f"reading {file.filename}",
        )

    def prefetch_metadata(self, files: Iterable[DistFile]) -> bool:
        """Starts fetching metadata in the background, under the caller's deadline; errors surface on `fetch_metadata`.

        True when any of `files` is not cached: its fetch is started, or was already running.
        """
        missing = False
        for file in files:
            if self._closed or self._refusals.get(_identity(file)) is not None:
                continue  # refused before: `fetch_metadata` says why
            if self._cached_metadata(file) is not None:
                continue
            missing = True
            if self._metadata_flight.is_running(_identity(file)):
                continue
            # In the caller's resolution's scope, under its deadline; dropped once that ended.
            self._workers.submit(self._prefetch_one, file)
        return missing

    def _prefetch_one(self, file: DistFile) -> None:
        if self._closed:
            return
        # `prefetch_metadata` asked the cache just now: straight to the flight, not a second
        # lookup of the same miss (on the server a database query, each a wait for the GIL among
        # the fetch threads; pypi-200 cold: 228 -> 215 queries). A load that ended in between
        # answers from `_just_loaded`, a refusal from `_refusals`.
        with suppress(LockdError):  # the resolver asks again and then reports it
            self._uncached_metadata(file)

    def _metadata_reader(self) -> MetadataReader:
        # Made on first use: its archive readers (tarfile, zipfile, the sdist child) are not
        # needed to send `lockd lock`'s first request, which is for a page. Once made, read
        # without the lock: every metadata fetch comes here.
        reader = self._reader
        if reader is not None:
            return reader
        with self._reader_lock:
            if self._reader is None:
                from lockd.index.metadata_reader import MetadataReader  # noqa: PLC0415

                self._reader = MetadataReader(
                    self._fetcher, self.options, self._counters, self._metadata_builder
                )
            return self._reader

    def _cached_metadata(self, file: DistFile) -> bytes | None:
        refusal = self._refusals.get(_identity(file))
        if refusal is not None:
            raise refusal
        key = MetadataKey.of(file)
        if key is None:
            return self._metadata_unhashed.get(_identity(file))
        return self._metadata_cache.get(key)

    def _load_metadata(self, file: DistFile) -> bytes:
        identity = _identity(file)
        refused = self._refusals.get(identity)  # a concurrent fetch may have finished meanwhile
        if refused is not None:
            raise refused
        cached = self._just_loaded.get(identity)
        if cached is not None:
            return cached
        self._counters.add("metadata_fetches")
        try:
            metadata = self._metadata_reader().read(file)
            check_metadata(
                metadata,
                filename=file.filename,
                name=file.name,
                version=file.version,
                max_requires_dist=self.options.max_requires_dist,
            )
        except ResponseTooLarge as exc:
            refusal = UnusableMetadata(
                f"{file.filename} cannot be read within lockd's limits: {exc.message}",
                hint=exc.hint,
                context={**exc.context, "filename": file.filename},
            )
            self._refusals.put(identity, refusal)
            raise refusal from None
        except (SdistNeedsBuild, UnusableMetadata) as refusal:
            self._refusals.put(identity, refusal)
            raise
        key = MetadataKey.of(file)
        if key is None:
            self._metadata_unhashed.put(identity, metadata)
        else:
            self._metadata_cache.put(key, metadata)
        self._just_loaded.put(identity, metadata)
        return metadata

    # -- hashes --------------------------------------------------------------------------

    def file_sha256(self, file: DistFile, *, verify: bool = False) -> str:
        """The file's sha256: the index's when it gives one (unless `verify`), else streamed once.

        Streaming is cached by URL + size + ETag. A streamed file whose hash differs from the
        one the index advertised raises `TamperedFile`.
        """
        if file.sha256 is not None and not verify:
            return file.sha256
        return self._hash_flight.run_within_deadline(
            file.url,
            lambda: self._hash_file(file, verify=verify),
            f"hashing {file.filename}",
        )

    def _hash_file(self, file: DistFile, *, verify: bool) -> str:
        key = None
        if not verify:
            key = self._hash_key(file)
            cached = self._hash_cache.get(key)
            if cached is not None:
                self._counters.add("cache_hits")
                return cached
        with self._fetcher.request("GET", file.url, headers=_IDENTITY) as response:
            self._counters.add("whole_downloads")
            self._fetcher.raise_for_status(response, file.url)
            digest = self._fetcher.stream_verified(response, file, None, self._fetcher.download_limit)
        if key is not None:
            self._hash_cache.put(key, digest)
        return digest

    def _hash_key(self, file: DistFile) -> str:
        with self._fetcher.request("HEAD", file.url) as response:
            if response.status_code >= 400:
                return f"{file.url} size={file.size} etag="
            size = response.headers.get("content-length") or (str(file.size) if file.size is not None else "")
            etag = response.headers.get("etag", "")
        return f"{file.url} size={size} etag={etag}"
