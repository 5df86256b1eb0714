"""HTTP to package indexes: one streamed request at a time, every answer read within limits and checked.

Builds the httpx transport (connection limits, the credentials transport, sockets bounded by
the current deadline: `network`) and sends requests straight to it, following redirects itself
and keeping no cookies; translates every httpx error into `IndexUnavailable` (or
`ResolutionTimeout` when the deadline ended it), explains 401/403 without showing a secret, reads
pages and metadata within their limits (`body`), hashes whole files while they stream
(`TamperedFile` on a mismatch) and reads byte ranges for the remote zip reader. Every read from
an index passes through here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx

from lockd.deadline import check_deadline, seconds_left
from lockd.errors import IndexUnavailable, ResolutionTimeout, TamperedFile
from lockd.index.body import ACCEPT_ENCODING, BodyLimit, limited_chunks, read_limited
from lockd.index.credentials import BasicAuthTransport, host_key
from lockd.index.network import deadline_transport
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.simple import DistFile

__all__ = ["Fetcher"]

_CONTENT_RANGE = re.compile(r"bytes\s+\d{1,20}-\d{1,20}/(\d{1,20})")
_NO_CREDENTIALS_HINT = (
    "give them in the index URL: https://user:password@host/simple/ "
    "(LOCKD_INDEX_URL, LOCKD_PYTORCH_INDEX_URL or --index-url)"
)
_WRONG_CREDENTIALS_HINT = (
    "check the user and password (or token) in LOCKD_INDEX_URL / LOCKD_PYTORCH_INDEX_URL"
)
# A timeout this close to the deadline was the deadline's doing, not the index's slowness.
_DEADLINE_SLACK = 0.05
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 20  # httpx's default


class Fetcher:
    """Sends requests to indexes and reads their answers. Thread-safe; `close` ends its connections."""

    def __init__(self, options: ClientOptions, counters: FetchCounters) -> None:
        self._credentials = options.credentials
        self._counters = counters
        self._timeout = options.timeout
        self.page_limit = BodyLimit(
            max_bytes=options.max_page_bytes,
            max_ratio=options.max_compression_ratio,
            setting="LOCKD_MAX_PAGE_BYTES",
        )
        self.metadata_limit = BodyLimit(
            max_bytes=options.max_metadata_bytes,
            max_ratio=options.max_compression_ratio,
            setting="LOCKD_MAX_METADATA_BYTES",
        )
        self.sdist_limit = BodyLimit(max_bytes=options.max_sdist_bytes, setting="LOCKD_MAX_SDIST_BYTES")
        self.download_limit = BodyLimit(
            max_bytes=options.max_download_bytes, setting="LOCKD_MAX_DOWNLOAD_BYTES"
        )
        transport: httpx.BaseTransport = deadline_transport(max_connections=options.max_connections)
        if self._credentials:
            transport = BasicAuthTransport(transport, self._credentials)
        self._transport = transport
        # What httpx.Client sent by default, with lockd's agent and encodings.
        self._headers = {
            "Accept": "*/*",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
            "User-Agent": options.user_agent,
        }

    def close(self) -> None:
        self._transport.close()

    @contextmanager
    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """One streamed request; transport failures become `IndexUnavailable`, the deadline's `ResolutionTimeout`."""
        check_deadline(f"asking {url}")
        self._counters.add("requests")
        left = seconds_left()
        # Sockets end at the deadline by themselves (`network`); waiting for a free connection does not.
        pool = self._timeout if left is None else max(0.0, min(self._timeout, left))
        timeout = httpx.Timeout(self._timeout, pool=pool).as_dict()
        try:
            response = self._send(method, url, headers, timeout)
            try:
                yield response
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            left = seconds_left()
            if left is not None and left <= _DEADLINE_SLACK:
                raise ResolutionTimeout(
                    f"resolution exceeded its time budget while reading {url}",
                    hint="the index answers too slowly for the budget; retry later, or raise LOCKD_RESOLVE_TIMEOUT",
                    context={"url": url},
                ) from None
            raise IndexUnavailable(
                f"{url} did not answer in time ({type(exc).__name__})", context={"url": url}
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # InvalidURL (e.g. "URL too long") is not an HTTPError but is just as much the index's problem.
            shown = url if len(url) <= 300 else url[:300] + "…"
            raise IndexUnavailable(
                f"cannot reach {shown}: {exc or type(exc).__name__}", context={"url": shown}
            ) from None

    def _send(
        self, method: str, url: str, headers: dict[str, str] | None, timeout: dict[str, float | None]
    ) -> httpx.Response:
        """The answer at the end of at most `_MAX_REDIRECTS` redirects, its body not yet read.

        Straight to the transport: httpx.Client's request building, cookie jar and auth and
        redirect generators cost ~0.3 ms of CPU per request, a tenth of a warm resolution's.
        Redirects are followed as httpx follows them for GET and HEAD: same method, the
        `Location` resolved against the URL that answered, http and https only. Credentials
        are the transport's to add, per host, so nothing here can carry them to another host.
        """
        # Callers name headers as `_headers` does ("Accept-Encoding"), so a plain dict overrides.
        fields = self._headers if headers is None else {**self._headers, **headers}
        target = _http_only(httpx.URL(url))
        for _ in range(_MAX_REDIRECTS + 1):
            request = httpx.Request(method, target, headers=fields, extensions={"timeout": timeout})
            response = self._transport.handle_request(request)
            response.request = request
            location = response.headers.get("location") if response.status_code in _REDIRECTS else None
            if location is None:
                return response
            response.close()
            target = _redirect_target(target, location)
        raise httpx.TooManyRedirects(f"more than {_MAX_REDIRECTS} redirects", request=request)

    def read_ok(self, response: httpx.Response, url: str, limit: BodyLimit) -> bytes:
        """The decoded body of a successful answer, within `limit`; an error status raises `IndexUnavailable`."""
        self.raise_for_status(response, url)
        return read_limited(response, url, limit, self._counters)

    def raise_for_status(self, response: httpx.Response, url: str) -> None:
        if response.status_code in (401, 403):
            raise self._refused(url, str(response.url), response.status_code)
        if response.status_code >= 400:
            raise IndexUnavailable(
                f"{url} answered HTTP {response.status_code}",
                context={"url": url, "status": response.status_code},
            )

    def file_chunks(self, response: httpx.Response, file: DistFile, limit: BodyLimit) -> Iterator[bytes]:
        """A file's bytes as they arrive (not decoded: they are what its hash is of), within `limit`."""
        return limited_chunks(response, file.url, limit, self._counters, decode=False)

    def stream_verified(
        self, response: httpx.Response, file: DistFile, sink: IO[bytes] | None, limit: BodyLimit
    ) -> str:
        """Streams a whole file into `sink` (or nowhere), within `limit`, returning its sha256.

        Raises `TamperedFile` when the index listed another sha256 for it.
        """
        hasher = hashlib.sha256()
        for chunk in self.file_chunks(response, file, limit):
            hasher.update(chunk)
            if sink is not None:
                sink.write(chunk)
        digest = hasher.hexdigest()
        self.verify(file, digest)
        return digest

    def verify(self, file: DistFile, digest: str) -> None:
        """Raises `TamperedFile` when `digest`, of the bytes served for `file`, is not the one listed."""
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

    def range_body(self, response: httpx.Response, file: DistFile, length: int) -> tuple[bytes, int]:
        """The body of a 206 answer to a request for `length` bytes, and the file's total size."""
        limit = BodyLimit(max_bytes=length)
        body = b"".join(self.file_chunks(response, file, limit))
        total = _content_range_total(response.headers.get("content-range"))
        if total is None:
            raise IndexUnavailable(
                f"{file.url} answered a range request without a usable Content-Range",
                context={"url": file.url},
            )
        return body, total

    def read_range(self, file: DistFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a file by one range request."""
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        with self.request("GET", file.url, headers=headers) as response:
            if response.status_code != 206:
                self.raise_for_status(response, file.url)
                raise IndexUnavailable(
                    f"{file.url} stopped honouring range requests (status {response.status_code})",
                    context={"url": file.url},
                )
            self._counters.add("range_requests")
            return self.range_body(response, file, end - start)[0]

    def _refused(self, url: str, answered: str, status: int) -> IndexUnavailable:
        """401/403: says whether lockd sent credentials to the host that refused, never what they are."""
        host = host_key(httpx.URL(answered))
        where = url if answered == url else f"{url} (redirected to {answered})"
        if self._credentials.for_url(answered) is None:
            why, hint = f"lockd has no credentials for {host}", _NO_CREDENTIALS_HINT
        else:
            why, hint = f"it refused the credentials configured for {host}", _WRONG_CREDENTIALS_HINT
        return IndexUnavailable(
            f"{where} answered HTTP {status}: {why}",
            hint=hint,
            context={"url": url, "status": status, "host": host},
        )


def _content_range_total(header: str | None) -> int | None:
    if not header:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    return int(match.group(1)) if match else None


def _redirect_target(url: httpx.URL, location: str) -> httpx.URL:
    """Where a `Location` sends a request for `url` (httpx's rules: relative, schemeless, fragment)."""
    try:
        target = httpx.URL(location)
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(f"invalid redirect location: {exc}") from None
    if target.scheme and not target.host:  # "https:/path" or "https:path": the same host
        target = target.copy_with(host=url.host)
    if target.is_relative_url:
        target = url.join(target)
    if url.fragment and not target.fragment:
        target = target.copy_with(fragment=url.fragment)
    return _http_only(target)


def _http_only(url: httpx.URL) -> httpx.URL:
    """`url` if it is http or https; an index's `file:`, `ftp:` or `data:` link (or redirect) is refused.

    httpcore met other schemes with a KeyError, which escaped as a crash.
    """
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(
            f"lockd reads indexes over http and https only, not {url.scheme or 'no'} scheme"
        )
    return url
