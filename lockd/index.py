"""HTTP access to package indexes: project pages, core metadata and file hashes.

Project pages come by PEP 691 content negotiation with a PEP 503 HTML fallback and are kept
in memory for a TTL (PyPI here strips caching headers, so revalidation would never hit).
Core metadata comes from PEP 658/714 `.metadata` files when advertised, else from HTTP range
requests into the wheel's zip (tail → central directory → the METADATA member only), else from
a streamed download; sdists only yield static PKG-INFO (Metadata-Version ≥ 2.2, Requires-Dist
not Dynamic) and nothing from them is ever executed. Metadata is cached by file sha256 (files
are immutable); identical concurrent fetches coalesce, and `prefetch_metadata` runs them on a
thread pool so the resolver rarely waits. Every httpx error is translated to a `LockdError`.

Private indexes take HTTP Basic credentials the way pip's `MultiDomainBasicAuth` does: split from
the configured URL's userinfo once (`split_credentials`, at the configuration edge), then sent with
every request to that index's host (pages, `.metadata`, ranges, downloads) and to no other host,
redirects included. URLs themselves never carry them, so neither do locks, digests or messages.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import struct
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from tempfile import SpooledTemporaryFile
from types import TracebackType
from typing import IO, Protocol, TypeVar
from urllib.parse import unquote

import httpx
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.errors import IndexUnavailable, LockdError, SdistNeedsBuild, TamperedFile, UnknownProject
from lockd.simple import (
    ACCEPT_HEADER,
    JSON_CONTENT_TYPE,
    DistFile,
    ProjectPage,
    parse_html_page,
    parse_json_page,
)

__all__ = [
    "DEFAULT_USER_AGENT",
    "BasicCredential",
    "FetchStats",
    "HashCache",
    "IndexClient",
    "IndexCredential",
    "IndexCredentials",
    "MemoryHashCache",
    "MemoryMetadataCache",
    "MetadataCache",
    "split_credentials",
]

DEFAULT_USER_AGENT = "lockd/0.1 (+https://github.com/lockd; httpx)"

_T = TypeVar("_T")

# One suffix request usually covers the EOCD, the central directory of an ordinary wheel and,
# because wheel builders write .dist-info last, the METADATA member itself.
_TAIL_BYTES = 64 * 1024
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIG = b"PK\x03\x04"
_DIST_INFO_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA$")
_MAX_METADATA = 16 * 1024 * 1024  # METADATA larger than this is an attack, not a package
_SPOOL_BYTES = 8 * 1024 * 1024
_CHUNK = 256 * 1024


class MetadataCache(Protocol):
    """Raw core metadata by the sha256 of the distribution file it came from."""

    def get(self, sha256: str) -> bytes | None: ...

    def put(self, sha256: str, metadata: bytes) -> None: ...


class HashCache(Protocol):
    """sha256 of files whose index gives none, keyed by URL + size + ETag."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, sha256: str) -> None: ...


class MemoryMetadataCache:
    """A process-local `MetadataCache`; thread-safe."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._data.get(sha256)

    def put(self, sha256: str, metadata: bytes) -> None:
        with self._lock:
            self._data[sha256] = metadata


class MemoryHashCache:
    """A process-local `HashCache`; thread-safe."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: str, sha256: str) -> None:
        with self._lock:
            self._data[key] = sha256


@dataclass(frozen=True, slots=True)
class FetchStats:
    """What an `IndexClient` has done so far; reported by the CLI and /metrics."""

    requests: int = 0
    bytes_fetched: int = 0
    pages: int = 0
    metadata_fetches: int = 0
    range_requests: int = 0
    whole_downloads: int = 0
    cache_hits: int = 0


@dataclass(frozen=True, slots=True)
class BasicCredential:
    """An HTTP Basic user and password. Neither shows in a repr: a token-only URL's user is the token."""

    username: str = field(repr=False)
    password: str = field(default="", repr=False)

    @property
    def header(self) -> str:
        userpass = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(userpass).decode("ascii")


@dataclass(frozen=True, slots=True)
class IndexCredential:
    """The credential of one configured index, for requests to its host (`host[:port]`)."""

    index_url: str  # without userinfo
    host: str
    secure: bool  # configured over https: never sent over plain http
    credential: BasicCredential


@dataclass(frozen=True, slots=True)
class IndexCredentials:
    """HTTP Basic credentials by index host, as pip's `MultiDomainBasicAuth` applies them.

    A request to a host that a configured index lives on carries that index's credential: the
    index whose URL is the longest prefix of the request's, else the first index on that host.
    Requests to any other host carry none.
    """

    indexes: tuple[IndexCredential, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.indexes)

    def __add__(self, other: IndexCredentials) -> IndexCredentials:
        return IndexCredentials(self.indexes + other.indexes)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host with a credential, `host[:port]`, in configuration order (safe to show)."""
        return tuple(dict.fromkeys(entry.host for entry in self.indexes))

    def for_url(self, url: str | httpx.URL) -> BasicCredential | None:
        """The credential a request to `url` carries, or None. Cost: one URL parse per request."""
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        host = _host_key(parsed)
        text = str(parsed)
        best: IndexCredential | None = None
        best_prefix = -1
        for entry in self.indexes:
            if entry.host != host or (entry.secure and parsed.scheme != "https"):
                continue
            prefix = _with_slash(entry.index_url)
            matched = len(prefix) if text.startswith(prefix) else 0
            if matched > best_prefix:
                best, best_prefix = entry, matched
        return best.credential if best is not None else None


def split_credentials(url: str) -> tuple[str, IndexCredentials]:
    """`url` without its userinfo, and the credential the userinfo carried (none without one).

    `https://user:pa%40ss@host/simple/` → (`https://host/simple/`, user `user`, password `pa@ss`);
    `https://token@host/` is a user with an empty password, as pip takes it. A URL without
    userinfo comes back unchanged, byte for byte. Raises `ValueError` (naming no part of the
    URL) when the host of a URL with credentials cannot be parsed.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, IndexCredentials()
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not at:
        return url, IndexCredentials()
    clean = f"{scheme}{separator}{hostport}{rest[end:]}"
    if not userinfo:
        return clean, IndexCredentials()
    try:
        parsed = httpx.URL(clean)
    except httpx.InvalidURL:
        raise ValueError("the host of this URL cannot be parsed") from None
    username, _, password = userinfo.partition(":")
    credential = BasicCredential(unquote(username), unquote(password))
    entry = IndexCredential(str(parsed), _host_key(parsed), parsed.scheme == "https", credential)
    return clean, IndexCredentials((entry,))


def _host_key(url: httpx.URL) -> str:
    return url.host if url.port is None else f"{url.host}:{url.port}"


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class _BasicAuthTransport(httpx.BaseTransport):
    """Adds an index host's credential to each request sent there, redirect hops included.

    httpx already drops `Authorization` when a redirect leaves the origin; this only ever adds
    the credential of the host a request actually goes to.
    """

    def __init__(self, inner: httpx.BaseTransport, credentials: IndexCredentials) -> None:
        self._inner = inner
        self._credentials = credentials

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        credential = self._credentials.for_url(request.url)
        if credential is not None:
            request.headers["Authorization"] = credential.header
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(FetchStats.__slots__, 0)

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            self._values[field] += amount

    def snapshot(self) -> FetchStats:
        with self._lock:
            return FetchStats(**self._values)


class _SingleFlight:
    """Runs one computation per key at a time; concurrent callers share its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[object]] = {}

    def run(self, key: str, compute: Callable[[], _T]) -> _T:
        with self._lock:
            running = self._running.get(key)
            owner = running is None
            if running is None:
                running = Future()
                self._running[key] = running
        if not owner:
            return running.result()  # type: ignore[return-value]
        try:
            value = compute()
        except BaseException as exc:
            running.set_exception(exc)
            raise
        else:
            running.set_result(value)
            return value
        finally:
            with self._lock:
                del self._running[key]

    def is_running(self, key: str) -> bool:
        with self._lock:
            return key in self._running


class IndexClient:
    """Reads Simple Repository API indexes over HTTP. Thread-safe; use as a context manager."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_connections: int = 32,
        page_ttl: float = 600.0,
        metadata_cache: MetadataCache | None = None,
        hash_cache: HashCache | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        credentials: IndexCredentials | None = None,
    ) -> None:
        self._credentials = credentials or IndexCredentials()
        # httpx ignores a Client's `limits` once a transport is given: they belong here.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        transport: httpx.BaseTransport = httpx.HTTPTransport(retries=1, limits=limits)
        if self._credentials:
            transport = _BasicAuthTransport(transport, self._credentials)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": user_agent},
            transport=transport,
        )
        self._page_ttl = page_ttl
        self._metadata_cache: MetadataCache = metadata_cache or MemoryMetadataCache()
        self._hash_cache: HashCache = hash_cache or MemoryHashCache()
        self._pages: dict[str, tuple[float, ProjectPage]] = {}
        # Files without an index hash cannot enter the metadata cache; their metadata and
        # build refusals are remembered for this client's lifetime only.
        self._metadata_by_url: dict[str, bytes] = {}
        self._refusals: dict[str, SdistNeedsBuild] = {}
        self._lock = threading.Lock()
        self._page_flight = _SingleFlight()
        self._metadata_flight = _SingleFlight()
        self._hash_flight = _SingleFlight()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(max_connections, 16)), thread_name_prefix="lockd-fetch"
        )
        self._counters = _Counters()
        self._closed = False

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
        self._http.close()

    @property
    def stats(self) -> FetchStats:
        return self._counters.snapshot()

    # -- project pages -------------------------------------------------------------------

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        """The project's files on one index; cached for `page_ttl` seconds.

        Raises `UnknownProject` on 404 and `IndexUnavailable` when the index cannot answer.
        """
        url = _page_url(index_url, name)
        with self._lock:
            cached = self._pages.get(url)
        if cached is not None and cached[0] > time.monotonic():
            self._counters.add("cache_hits")
            return cached[1]
        return self._page_flight.run(url, lambda: self._fetch_page(index_url, url, name))

    def drop_pages(self) -> None:
        """Forgets every cached project page (drift checks want the index as it is now)."""
        with self._lock:
            self._pages.clear()

    def _fetch_page(self, index_url: str, url: str, name: NormalizedName) -> ProjectPage:
        with self._request("GET", url, headers={"Accept": ACCEPT_HEADER}) as response:
            if response.status_code == 404:
                raise UnknownProject(
                    f"{name} is not on the index {index_url}",
                    hint="check the spelling; lockd takes the torch family only from the PyTorch index "
                    "and every other project only from the default index",
                    context={"project": name, "index": index_url, "url": url},
                )
            body = self._read_ok(response, url)
            content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            page_url = str(response.url)
        self._counters.add("pages")
        page = _parse_page(body, content_type, page_url, name, url)
        with self._lock:
            self._pages[url] = (time.monotonic() + self._page_ttl, page)
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
        with self._lock:
            refusal = self._refusals.get(file.url)
            in_memory = self._metadata_by_url.get(file.url)
        if refusal is not None:
            raise refusal
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
            with self._lock:
                self._refusals[file.url] = refusal
            raise
        with self._lock:
            self._metadata_by_url[file.url] = metadata
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
        with self._request("GET", url) as response:
            if response.status_code == 404:
                return None  # advertised but missing happens; the wheel itself still has it
            body = self._read_ok(response, url)
        if (
            file.metadata_sha256 is not None
            and hashlib.sha256(body).hexdigest() != file.metadata_sha256.lower()
        ):
            raise TamperedFile(
                f"{file.filename}.metadata does not match the sha256 the index advertised",
                context={
                    "url": url,
                    "expected": file.metadata_sha256,
                    "actual": hashlib.sha256(body).hexdigest(),
                },
            )
        return body

    def _ranged_wheel_metadata(self, file: DistFile) -> bytes:
        tail_start, tail, total = self._read_tail(file)
        if total is None:  # the server ignored the range: `tail` is the whole wheel
            return _metadata_from_zip(file, io.BytesIO(tail))
        reader = _RangedZip(self, file, total, tail_start, tail)
        return reader.metadata()

    def _read_tail(self, file: DistFile) -> tuple[int, bytes, int | None]:
        """(offset, bytes, total size) of the file's tail; total None means a 200 answer."""
        headers = {"Range": f"bytes=-{_TAIL_BYTES}", "Accept-Encoding": "identity"}
        with self._request("GET", file.url, headers=headers) as response:
            if response.status_code == 206:
                self._counters.add("range_requests")
                body = self._read_ok(response, file.url)
                total = _content_range_total(response.headers.get("content-range"))
                if total is None:
                    raise IndexUnavailable(
                        f"{file.url} answered a range request without a usable Content-Range",
                        context={"url": file.url},
                    )
                return total - len(body), body, total
            if response.status_code == 200:
                self._counters.add("whole_downloads")
                return 0, self._read_whole(response, file), None
            self._read_ok(response, file.url)
        raise IndexUnavailable(
            f"{file.url} answered {response.status_code} to a range request", context={"url": file.url}
        )

    def read_range(self, file: DistFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file by one range request (used by the zip reader)."""
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        with self._request("GET", file.url, headers=headers) as response:
            if response.status_code != 206:
                self._read_ok(response, file.url)
                raise IndexUnavailable(
                    f"{file.url} stopped honouring range requests (status {response.status_code})",
                    context={"url": file.url},
                )
            self._counters.add("range_requests")
            return self._read_ok(response, file.url)

    def _sdist_metadata(self, file: DistFile) -> bytes:
        with self._request("GET", file.url) as response:
            self._counters.add("whole_downloads")
            if response.status_code >= 400:
                self._read_ok(response, file.url)
            with SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
                self._stream_verified(response, file, spool)
                spool.seek(0)
                return _static_pkg_info(file, spool)

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
        with self._request("GET", file.url) as response:
            self._counters.add("whole_downloads")
            if response.status_code >= 400:
                self._read_ok(response, file.url)
            digest = self._stream_verified(response, file, None)
        if key is not None:
            self._hash_cache.put(key, digest)
        return digest

    def _hash_key(self, file: DistFile) -> str:
        with self._request("HEAD", file.url) as response:
            if response.status_code >= 400:
                return f"{file.url} size={file.size} etag="
            size = response.headers.get("content-length") or (str(file.size) if file.size is not None else "")
            etag = response.headers.get("etag", "")
        return f"{file.url} size={size} etag={etag}"

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """One streamed request; transport failures become `IndexUnavailable`."""
        self._counters.add("requests")
        try:
            with self._http.stream(method, url, headers=headers) as response:
                yield response
        except httpx.TimeoutException as exc:
            raise IndexUnavailable(
                f"{url} did not answer in time ({type(exc).__name__})", context={"url": url}
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # InvalidURL (e.g. "URL too long") is not an HTTPError but is just as much the index's problem.
            shown = url if len(url) <= 300 else url[:300] + "…"
            raise IndexUnavailable(
                f"cannot reach {shown}: {exc or type(exc).__name__}", context={"url": shown}
            ) from None

    def _read_ok(self, response: httpx.Response, url: str) -> bytes:
        if response.status_code in (401, 403):
            raise self._refused(url, str(response.url), response.status_code)
        if response.status_code >= 400:
            raise IndexUnavailable(
                f"{url} answered HTTP {response.status_code}",
                context={"url": url, "status": response.status_code},
            )
        chunks = []
        for chunk in response.iter_bytes(_CHUNK):
            self._counters.add("bytes_fetched", len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    def _refused(self, url: str, answered: str, status: int) -> IndexUnavailable:
        """401/403: says whether lockd sent credentials to the host that refused, never what they are."""
        host = _host_key(httpx.URL(answered))
        where = url if answered == url else f"{url} (redirected to {answered})"
        if self._credentials.for_url(answered) is None:
            why = f"lockd has no credentials for {host}"
            hint = "give them in the index URL: https://user:password@host/simple/ (LOCKD_INDEX_URL, LOCKD_PYTORCH_INDEX_URL or --index-url)"
        else:
            why = f"it refused the credentials configured for {host}"
            hint = "check the user and password (or token) in LOCKD_INDEX_URL / LOCKD_PYTORCH_INDEX_URL"
        return IndexUnavailable(
            f"{where} answered HTTP {status}: {why}", hint=hint, context={"url": url, "status": status, "host": host}
        )

    def _read_whole(self, response: httpx.Response, file: DistFile) -> bytes:
        buffer = io.BytesIO()
        self._stream_verified(response, file, buffer)
        return buffer.getvalue()

    def _stream_verified(self, response: httpx.Response, file: DistFile, sink: IO[bytes] | None) -> str:
        hasher = hashlib.sha256()
        for chunk in response.iter_bytes(_CHUNK):
            self._counters.add("bytes_fetched", len(chunk))
            hasher.update(chunk)
            if sink is not None:
                sink.write(chunk)
        digest = hasher.hexdigest()
        if file.sha256 is not None and digest != file.sha256:
            raise TamperedFile(
                f"{file.filename} from {file.index_url or file.url} does not match the sha256 the index advertised",
                hint="the file changed after the index listed it; do not install it",
                context={
                    "filename": file.filename,
                    "url": file.url,
                    "expected": file.sha256,
                    "actual": digest,
                },
            )
        return digest


def _page_url(index_url: str, name: NormalizedName) -> str:
    return f"{_with_slash(index_url)}{name}/"


def _parse_page(body: bytes, content_type: str, page_url: str, name: NormalizedName, url: str) -> ProjectPage:
    try:
        if content_type in (JSON_CONTENT_TYPE, "application/json"):
            return parse_json_page(body, page_url, name)
        if content_type in ("text/html", "application/vnd.pypi.simple.v1+html", "application/xhtml+xml"):
            return parse_html_page(body, page_url, name)
    except (ValueError, TypeError, AttributeError) as exc:
        raise IndexUnavailable(
            f"{url} returned a page lockd cannot parse ({type(exc).__name__})", context={"url": url}
        ) from None
    raise IndexUnavailable(
        f"{url} returned {content_type or 'no content type'}, not a Simple API page",
        context={"url": url, "content_type": content_type},
    )


def _content_range_total(header: str | None) -> int | None:
    if not header:
        return None
    match = re.match(r"bytes\s+\d+-\d+/(\d+)", header.strip())
    return int(match.group(1)) if match else None


def _metadata_member_score(filename: str, file: DistFile) -> tuple[int, str] | None:
    """Which `.dist-info/METADATA` to read: the one named after the project comes first."""
    match = _DIST_INFO_METADATA.match(filename)
    if match is None:
        return None
    stem = match.group(1)
    name, _, version = stem.rpartition("-")
    exact = canonicalize_name(name) == file.name and _same_version(version, file.version)
    return (0 if exact else 1, filename)


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def _metadata_from_zip(file: DistFile, data: IO[bytes]) -> bytes:
    try:
        with zipfile.ZipFile(data) as archive:
            best = _choose_member(file, archive.namelist())
            with archive.open(best) as member:
                return member.read(_MAX_METADATA)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise IndexUnavailable(
            f"{file.filename} is not a readable wheel: {exc}", context={"url": file.url}
        ) from None


def _choose_member(file: DistFile, names: Iterable[str]) -> str:
    scored = [score for name in names if (score := _metadata_member_score(name, file)) is not None]
    if not scored:
        raise IndexUnavailable(f"{file.filename} has no .dist-info/METADATA", context={"url": file.url})
    return min(scored)[1]


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    method: int
    compressed_size: int
    local_offset: int


class _RangedZip:
    """Reads one member of a remote zip from its tail plus, if needed, a few range requests."""

    def __init__(self, client: IndexClient, file: DistFile, total: int, tail_start: int, tail: bytes) -> None:
        self._client = client
        self._file = file
        self._total = total
        self._held: list[tuple[int, bytes]] = [(tail_start, tail)]

    def _bytes(self, start: int, end: int) -> bytes:
        """Bytes [start, end): from what is held, else by exactly one range request."""
        if start < 0 or end > self._total or start > end:
            raise self._corrupt(f"zip structure points outside the file ({start}-{end})")
        for held_start, held in self._held:
            if held_start <= start and end <= held_start + len(held):
                return held[start - held_start : end - held_start]
        data = self._client.read_range(self._file, start, end)
        if len(data) != end - start:
            raise self._corrupt(f"range {start}-{end} returned {len(data)} bytes")
        self._held.append((start, data))
        return data

    def _corrupt(self, why: str) -> IndexUnavailable:
        return IndexUnavailable(
            f"{self._file.filename} is not a readable wheel: {why}", context={"url": self._file.url}
        )

    def metadata(self) -> bytes:
        cd_offset, cd_size = self._central_directory()
        directory = self._bytes(cd_offset, cd_offset + cd_size)
        members = self._members(directory)
        chosen = _choose_member(self._file, members)
        return self._read_member(members[chosen])

    def _central_directory(self) -> tuple[int, int]:
        _start, tail = self._held[0]
        window = tail[-(_EOCD.size + 65535) :]
        at = window.rfind(_EOCD_SIG)
        if at < 0 or len(window) - at < _EOCD.size:
            raise self._corrupt("no end of central directory record")
        eocd_offset = self._total - (len(window) - at)
        fields = _EOCD.unpack(window[at : at + _EOCD.size])
        cd_size, cd_offset = fields[5], fields[6]
        if cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF or fields[4] == 0xFFFF:
            locator = self._bytes(eocd_offset - _ZIP64_LOCATOR.size, eocd_offset)
            sig, _disk, z64_offset, _disks = _ZIP64_LOCATOR.unpack(locator)
            if sig != _ZIP64_LOCATOR_SIG:
                raise self._corrupt("zip64 locator missing")
            record = self._bytes(z64_offset, z64_offset + _ZIP64_EOCD.size)
            z64 = _ZIP64_EOCD.unpack(record)
            if z64[0] != _ZIP64_EOCD_SIG:
                raise self._corrupt("zip64 end of central directory missing")
            cd_size, cd_offset = z64[8], z64[9]
        return cd_offset, cd_size

    def _members(self, directory: bytes) -> dict[str, _Member]:
        members: dict[str, _Member] = {}
        pos = 0
        while pos + _CENTRAL.size <= len(directory):
            fields = _CENTRAL.unpack_from(directory, pos)
            if fields[0] != _CENTRAL_SIG:
                break
            method, csize, usize = fields[4], fields[8], fields[9]
            name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
            offset = fields[16]
            start = pos + _CENTRAL.size
            raw_name = directory[start : start + name_len]
            extra = directory[start + name_len : start + name_len + extra_len]
            name = raw_name.decode("utf-8" if fields[3] & 0x800 else "cp437")
            csize, offset = _zip64_sizes(extra, usize, csize, offset)
            members[name] = _Member(name, method, csize, offset)
            pos = start + name_len + extra_len + comment_len
        return members

    def _read_member(self, member: _Member) -> bytes:
        if member.compressed_size > _MAX_METADATA:
            raise self._corrupt(f"{member.name} is implausibly large")
        # One request for header and data: the local extra field is rarely longer than the slack.
        guess_end = (
            member.local_offset + _LOCAL.size + len(member.name.encode()) + 256 + member.compressed_size
        )
        self._bytes(member.local_offset, min(guess_end, self._total))
        header = self._bytes(member.local_offset, member.local_offset + _LOCAL.size)
        fields = _LOCAL.unpack(header)
        if fields[0] != _LOCAL_SIG:
            raise self._corrupt(f"bad local header for {member.name}")
        data_start = member.local_offset + _LOCAL.size + fields[9] + fields[10]
        raw = self._bytes(data_start, data_start + member.compressed_size)
        if member.method == zipfile.ZIP_STORED:
            return raw
        if member.method == zipfile.ZIP_DEFLATED:
            try:
                return zlib.decompressobj(-15).decompress(raw, _MAX_METADATA)
            except zlib.error as exc:
                raise self._corrupt(f"{member.name}: {exc}") from None
        raise self._corrupt(f"{member.name} uses unsupported compression {member.method}")


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int]:
    """Compressed size and local header offset, taking the zip64 extra field into account."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 0x0001:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            break
        pos += 4 + size
    return csize, offset


def _static_pkg_info(file: DistFile, archive: IO[bytes]) -> bytes:
    """PKG-INFO of an sdist if its dependency metadata is static (PEP 643); never runs anything."""
    pkg_info = _read_pkg_info(file, archive)
    headers = BytesHeaderParser().parsebytes(pkg_info)
    version_text = headers.get("Metadata-Version", "")
    dynamic = {value.strip().lower() for value in headers.get_all("Dynamic") or []}
    try:
        metadata_version = Version(version_text.strip())
    except InvalidVersion:
        metadata_version = Version("0")
    if metadata_version < Version("2.2") or "requires-dist" in dynamic:
        reason = (
            f"its PKG-INFO is Metadata-Version {version_text.strip() or 'unknown'} (static metadata needs ≥ 2.2)"
            if metadata_version < Version("2.2")
            else "its PKG-INFO marks Requires-Dist as Dynamic"
        )
        raise SdistNeedsBuild(
            f"{file.name} {file.version} is only available as a source distribution whose dependencies "
            f"are known only after a build: {reason}",
            hint="lockd never runs build backends; pin a version that has wheels for the target",
            context={"project": file.name, "version": str(file.version), "filename": file.filename},
        )
    return pkg_info


def _read_pkg_info(file: DistFile, archive: IO[bytes]) -> bytes:
    try:
        if file.filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                names = [n for n in zipped.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")]
                if names:
                    with zipped.open(sorted(names)[0]) as member:
                        return member.read(_MAX_METADATA)
        else:
            with tarfile.open(fileobj=archive, mode="r:*") as tarred:
                for info in tarred:
                    if info.isfile() and info.name.count("/") == 1 and info.name.endswith("/PKG-INFO"):
                        extracted = tarred.extractfile(info)
                        if extracted is not None:
                            return extracted.read(_MAX_METADATA)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise IndexUnavailable(
            f"{file.filename} is not a readable source archive: {exc}", context={"url": file.url}
        ) from None
    raise SdistNeedsBuild(
        f"{file.name} {file.version} is a source distribution without PKG-INFO; its dependencies are "
        "known only after a build",
        hint="lockd never runs build backends; pin a version that has wheels for the target",
        context={"project": file.name, "version": str(file.version), "filename": file.filename},
    )
