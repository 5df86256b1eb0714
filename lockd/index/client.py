"""`IndexClient`: project pages, core metadata and file hashes from Simple Repository API indexes.

Project pages come by PEP 691 content negotiation with a PEP 503 HTML fallback and are kept
in memory for a TTL, bounded in bytes (PyPI here strips caching headers, so revalidation
would never hit). Core metadata comes from PEP 658/714 `.metadata` files when advertised, else
from HTTP range requests into the wheel's zip (`remote_zip`: tail → central directory → the
METADATA member only), else from a streamed download; sdists only yield static PKG-INFO
(`lockd.sdist_metadata`, PEP 643) and nothing from them is ever executed. Metadata is cached
by file sha256 (files are immutable); identical concurrent fetches coalesce, and
`prefetch_metadata` runs them on a thread pool so the resolver rarely waits. This module
decides what to fetch and what to remember; `fetcher` does the HTTP.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from tempfile import SpooledTemporaryFile
from types import TracebackType

from packaging.utils import NormalizedName

from lockd.errors import IndexUnavailable, LockdError, SdistNeedsBuild, TamperedFile, UnknownProject
from lockd.index.caches import HashCache, MetadataCache, memory_hash_cache, memory_metadata_cache, page_cache
from lockd.index.credentials import IndexCredentials
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.remote_zip import TAIL_BYTES, RemoteZip, metadata_from_zip_file
from lockd.index.single_flight import SingleFlight
from lockd.index.stats import FetchCounters, FetchStats
from lockd.memory_cache import BoundedCache
from lockd.sdist_sources import MetadataBuilder, sdist_core_metadata
from lockd.simple import (
    ACCEPT_HEADER,
    JSON_CONTENT_TYPE,
    DistFile,
    ProjectPage,
    parse_html_page,
    parse_json_page,
)

__all__ = ["IndexClient"]

_SPOOL_BYTES = 8 * 1024 * 1024
_HTML_CONTENT_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html", "application/xhtml+xml")


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
        # `is None`, not `or`: an empty cache has a length of 0, so it is falsy, and is still the cache.
        if metadata_cache is None:
            metadata_cache = memory_metadata_cache(options.metadata_cache_bytes)
        if hash_cache is None:
            hash_cache = memory_hash_cache(options.hash_cache_entries)
        self._metadata_cache: MetadataCache = metadata_cache
        self._hash_cache: HashCache = hash_cache
        self._pages = page_cache(options.page_cache_bytes, options.page_ttl)
        # Files without an index hash cannot enter the metadata cache; their metadata and
        # build refusals are remembered by URL, for this client only.
        self._metadata_by_url: BoundedCache[str, bytes] = BoundedCache(
            options.metadata_by_url_bytes, sizeof=len
        )
        self._refusals: BoundedCache[str, SdistNeedsBuild] = BoundedCache(options.refusal_entries)
        self._page_flight: SingleFlight[str, ProjectPage] = SingleFlight()
        self._metadata_flight: SingleFlight[str, bytes] = SingleFlight()
        self._hash_flight: SingleFlight[str, str] = SingleFlight()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(options.max_connections, 16)), thread_name_prefix="lockd-fetch"
        )
        self._closed = False
        # LOCKD_SDIST_METADATA=sandbox: the last resort for sdists (lockd.sdist_sources).
        self._metadata_builder = metadata_builder

    @classmethod
    def from_options(
        cls,
        options: ClientOptions,
        *,
        metadata_cache: MetadataCache | None = None,
        hash_cache: HashCache | None = None,
        metadata_builder: MetadataBuilder | None = None,
    ) -> IndexClient:
        """A client configured by `options`, remembering metadata and hashes in the given caches."""
        return cls(
            options, metadata_cache=metadata_cache, hash_cache=hash_cache, metadata_builder=metadata_builder
        )

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancels queued prefetches, waits for running ones, closes connections."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._fetcher.close()

    @property
    def stats(self) -> FetchStats:
        return self._counters.snapshot()

    # -- project pages -------------------------------------------------------------------

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        """The project's files on one index; cached for `page_ttl` seconds.

        Raises `UnknownProject` on 404 and `IndexUnavailable` when the index cannot answer.
        """
        url = _page_url(index_url, name)
        cached = self._pages.get(url)
        if cached is not None:
            self._counters.add("cache_hits")
            return cached
        return self._page_flight.run(url, lambda: self._fetch_page(index_url, url, name))

    def drop_pages(self) -> None:
        """Forgets every cached project page (drift checks want the index as it is now)."""
        self._pages.clear()

    def _fetch_page(self, index_url: str, url: str, name: NormalizedName) -> ProjectPage:
        with self._fetcher.request("GET", url, headers={"Accept": ACCEPT_HEADER}) as response:
            if response.status_code == 404:
                raise UnknownProject(
                    f"{name} is not on the index {index_url}",
                    hint="check the spelling; lockd takes the torch family only from the PyTorch index "
                    "and every other project only from the default index",
                    context={"project": name, "index": index_url, "url": url},
                )
            body = self._fetcher.read_ok(response, url)
            content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            page_url = str(response.url)
        self._counters.add("pages")
        page = _parse_page(body, content_type, page_url, name, url)
        self._pages.put(url, page)
        return page

    # -- core metadata -------------------------------------------------------------------

    def fetch_metadata(self, file: DistFile) -> bytes:
        """Raw METADATA (wheels) or static PKG-INFO (sdists) of one file.

        Costs nothing when cached; otherwise one `.metadata` GET, or two or three range
        requests into a wheel, or one streamed sdist download. Joins an in-flight prefetch.
        """
        cached = self._cached_metadata(file)
        if cached is not None:
            self._counters.add("cache_hits")
            return cached
        return self._metadata_flight.run(file.url, lambda: self._load_metadata(file))

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        """Starts fetching metadata in the background; errors surface on `fetch_metadata`."""
        for file in files:
            if self._closed or self._cached_metadata(file) is not None:
                continue
            if self._metadata_flight.is_running(file.url):
                continue
            try:
                self._pool.submit(self._prefetch_one, file)
            except RuntimeError:
                return  # the pool is shutting down: prefetching is only an optimisation

    def _prefetch_one(self, file: DistFile) -> None:
        if self._closed:
            return
        with suppress(LockdError):  # the resolver asks again and then reports it
            self.fetch_metadata(file)

    def _cached_metadata(self, file: DistFile) -> bytes | None:
        refusal = self._refusals.get(file.url)
        if refusal is not None:
            raise refusal
        in_memory = self._metadata_by_url.get(file.url)
        if in_memory is not None:
            return in_memory
        if file.sha256 is not None:
            return self._metadata_cache.get(file.sha256)
        return None

    def _load_metadata(self, file: DistFile) -> bytes:
        cached = self._cached_metadata(file)  # a concurrent fetch may have finished meanwhile
        if cached is not None:
            return cached
        self._counters.add("metadata_fetches")
        try:
            metadata = self._sdist_metadata(file) if file.kind == "sdist" else self._wheel_metadata(file)
        except SdistNeedsBuild as refusal:
            self._refusals.put(file.url, refusal)
            raise
        self._metadata_by_url.put(file.url, metadata)
        if file.sha256 is not None:
            self._metadata_cache.put(file.sha256, metadata)
        return metadata

    def _wheel_metadata(self, file: DistFile) -> bytes:
        if file.metadata_url is not None:
            metadata = self._pep658_metadata(file, file.metadata_url)
            if metadata is not None:
                return metadata
        return self._ranged_wheel_metadata(file)

    def _pep658_metadata(self, file: DistFile, url: str) -> bytes | None:
        with self._fetcher.request("GET", url) as response:
            if response.status_code == 404:
                return None  # advertised but missing happens; the wheel itself still has it
            body = self._fetcher.read_ok(response, url)
        actual = hashlib.sha256(body).hexdigest()
        if file.metadata_sha256 is not None and actual != file.metadata_sha256.lower():
            raise TamperedFile(
                f"{file.filename}.metadata does not match the sha256 the index advertised",
                context={"url": url, "expected": file.metadata_sha256, "actual": actual},
            )
        return body

    def _ranged_wheel_metadata(self, file: DistFile) -> bytes:
        limit = self.options.max_metadata_bytes
        tail, total = self._fetcher.read_tail(file, TAIL_BYTES)
        if total is None:  # the server ignored the range: `tail` is the whole wheel
            data = io.BytesIO(tail)
            return metadata_from_zip_file(
                data, file.name, file.version, name=file.filename, url=file.url, max_bytes=limit
            )

        def read_range(start: int, end: int) -> bytes:
            return self._fetcher.read_range(file, start, end)

        archive = RemoteZip(
            read_range, total, name=file.filename, url=file.url, max_member_bytes=limit, tail=tail
        )
        return archive.dist_info_metadata(file.name, file.version)

    def _sdist_metadata(self, file: DistFile) -> bytes:
        with self._fetcher.request("GET", file.url) as response:
            self._counters.add("whole_downloads")
            self._fetcher.raise_for_status(response, file.url)
            with SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
                self._fetcher.stream_verified(response, file, spool)
                spool.seek(0)
                return sdist_core_metadata(
                    file, spool, max_bytes=self.options.max_metadata_bytes, builder=self._metadata_builder
                )

    # -- hashes --------------------------------------------------------------------------

    def file_sha256(self, file: DistFile, *, verify: bool = False) -> str:
        """The file's sha256: the index's when it gives one (unless `verify`), else streamed once.

        Streaming is cached by URL + size + ETag. A streamed file whose hash differs from the
        one the index advertised raises `TamperedFile`.
        """
        if file.sha256 is not None and not verify:
            return file.sha256
        return self._hash_flight.run(file.url, lambda: self._hash_file(file, verify=verify))

    def _hash_file(self, file: DistFile, *, verify: bool) -> str:
        key = None
        if not verify:
            key = self._hash_key(file)
            cached = self._hash_cache.get(key)
            if cached is not None:
                self._counters.add("cache_hits")
                return cached
        with self._fetcher.request("GET", file.url) as response:
            self._counters.add("whole_downloads")
            self._fetcher.raise_for_status(response, file.url)
            digest = self._fetcher.stream_verified(response, file, None)
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


def _page_url(index_url: str, name: NormalizedName) -> str:
    base = index_url if index_url.endswith("/") else index_url + "/"
    return f"{base}{name}/"


def _parse_page(body: bytes, content_type: str, page_url: str, name: NormalizedName, url: str) -> ProjectPage:
    try:
        if content_type in (JSON_CONTENT_TYPE, "application/json"):
            return parse_json_page(body, page_url, name)
        if content_type in _HTML_CONTENT_TYPES:
            return parse_html_page(body, page_url, name)
    except (ValueError, TypeError, AttributeError) as exc:
        raise IndexUnavailable(
            f"{url} returned a page lockd cannot parse ({type(exc).__name__})", context={"url": url}
        ) from None
    raise IndexUnavailable(
        f"{url} returned {content_type or 'no content type'}, not a Simple API page",
        context={"url": url, "content_type": content_type},
    )
