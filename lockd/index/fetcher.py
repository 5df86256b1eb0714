"""HTTP to package indexes: one streamed request at a time, every answer read, counted and checked.

Builds the httpx client (connection limits, timeouts, the credentials transport), translates
every httpx error into `IndexUnavailable`, explains 401/403 without showing a secret, hashes
whole files while they stream (`TamperedFile` on a mismatch) and reads byte ranges for the
remote zip reader. Every read from an index passes through here.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx

from lockd.errors import IndexUnavailable, TamperedFile
from lockd.index.credentials import BasicAuthTransport, host_key
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.simple import DistFile

__all__ = ["Fetcher"]

_CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)")
_NO_CREDENTIALS_HINT = (
    "give them in the index URL: https://user:password@host/simple/ "
    "(LOCKD_INDEX_URL, LOCKD_PYTORCH_INDEX_URL or --index-url)"
)
_WRONG_CREDENTIALS_HINT = (
    "check the user and password (or token) in LOCKD_INDEX_URL / LOCKD_PYTORCH_INDEX_URL"
)


class Fetcher:
    """Sends requests to indexes and reads their answers. Thread-safe; `close` ends its connections."""

    def __init__(self, options: ClientOptions, counters: FetchCounters) -> None:
        self._credentials = options.credentials
        self._counters = counters
        # httpx ignores a Client's `limits` once a transport is given: they belong here.
        limits = httpx.Limits(
            max_connections=options.max_connections, max_keepalive_connections=options.max_connections
        )
        transport: httpx.BaseTransport = httpx.HTTPTransport(retries=1, limits=limits)
        if self._credentials:
            transport = BasicAuthTransport(transport, self._credentials)
        self._http = httpx.Client(
            timeout=httpx.Timeout(options.timeout),
            follow_redirects=True,
            headers={"User-Agent": options.user_agent},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def request(
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

    def read_ok(self, response: httpx.Response, url: str) -> bytes:
        """The body of a successful answer; an error status raises `IndexUnavailable`."""
        self.raise_for_status(response, url)
        chunks = []
        for chunk in response.iter_bytes(_CHUNK):
            self._counters.add("bytes_fetched", len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    def raise_for_status(self, response: httpx.Response, url: str) -> None:
        if response.status_code in (401, 403):
            raise self._refused(url, str(response.url), response.status_code)
        if response.status_code >= 400:
            raise IndexUnavailable(
                f"{url} answered HTTP {response.status_code}",
                context={"url": url, "status": response.status_code},
            )

    def stream_verified(self, response: httpx.Response, file: DistFile, sink: IO[bytes] | None) -> str:
        """Streams a whole file into `sink` (or nowhere), returning its sha256.

        Raises `TamperedFile` when the index listed another sha256 for it.
        """
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

    def read_tail(self, file: DistFile, length: int) -> tuple[bytes, int | None]:
        """The file's last `length` bytes and its total size; a size of None means the server
        ignored the range and the bytes are the whole (verified) file."""
        headers = {"Range": f"bytes=-{length}", "Accept-Encoding": "identity"}
        with self.request("GET", file.url, headers=headers) as response:
            if response.status_code == 206:
                self._counters.add("range_requests")
                body = self.read_ok(response, file.url)
                total = _content_range_total(response.headers.get("content-range"))
                if total is None:
                    raise IndexUnavailable(
                        f"{file.url} answered a range request without a usable Content-Range",
                        context={"url": file.url},
                    )
                return body, total
            if response.status_code == 200:
                self._counters.add("whole_downloads")
                whole = io.BytesIO()
                self.stream_verified(response, file, whole)
                return whole.getvalue(), None
            self.raise_for_status(response, file.url)
        raise IndexUnavailable(
            f"{file.url} answered {response.status_code} to a range request", context={"url": file.url}
        )

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
            return self.read_ok(response, file.url)

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
