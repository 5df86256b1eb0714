"""HTTP to package indexes: one streamed request at a time, every answer read within limits and checked.

Sends requests over its own keep-alive connections (bounded in number, sockets bounded by the
current deadline: `network`), adding an index host's credential, following redirects itself
and keeping no cookies; translates every transport error into `IndexUnavailable` (or
`ResolutionTimeout` when the deadline ended it), explains 401/403 without showing a secret, reads
pages and metadata within their limits (`body`), hashes whole files while they stream
(`TamperedFile` on a mismatch) and reads byte ranges for the remote zip reader. Every read from
an index passes through here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from lockd.deadline import check_deadline, seconds_left
from lockd.errors import IndexUnavailable, ResolutionTimeout, TamperedFile
from lockd.index.answers import Answer
from lockd.index.body import ACCEPT_ENCODING, BodyLimit, limited_chunks, read_limited
from lockd.index.network import index_connections
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.index.urls import BadUrl, RequestUrl, parse_request_url, redirect_target
from lockd.index.wire import Request, Timeouts, TransportError, TransportTimeout

if TYPE_CHECKING:
    from lockd.simple import DistFile

__all__ = ["Fetcher", "budget_spent_reading", "request_to"]

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
_MAX_REDIRECTS = 20  # as httpx and requests
# What a failed exchange raises below the fetcher: each becomes `IndexUnavailable`.
_TRANSPORT_ERRORS = (TransportError, BadUrl)


class _TooManyRedirects(Exception):
    pass


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
        self._connections = index_connections(max_connections=options.max_connections)
        # What httpx.Client sent by default (lockd's client before this one), with lockd's agent and encodings.
        self._headers = {
            "Accept": "*/*",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive",
            "User-Agent": options.user_agent,
        }

    def close(self) -> None:
        self._connections.close()

    @contextmanager
    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> Iterator[Answer]:
        """One streamed request; transport failures become `IndexUnavailable`, the deadline's `ResolutionTimeout`."""
        check_deadline(f"asking {url}")
        self._counters.add("requests")
        left = seconds_left()
        # Sockets end at the deadline by themselves (`network`); waiting for a free connection does not.
        pool = self._timeout if left is None else max(0.0, min(self._timeout, left))
        each = self._timeout
        timeout: dict[str, float | None] = {"connect": each, "read": each, "write": each, "pool": pool}
        try:
            response = self._send(method, url, headers, timeout)
            try:
                yield response
            finally:
                response.close()
        except TransportTimeout as exc:
            left = seconds_left()
            if left is not None and left <= _DEADLINE_SLACK:
                raise budget_spent_reading(url) from None
            raise IndexUnavailable(
                f"{url} did not answer in time ({type(exc).__name__})", context={"url": url}
            ) from None
        except (*_TRANSPORT_ERRORS, _TooManyRedirects) as exc:
            shown = url if len(url) <= 300 else url[:300] + "…"
            raise IndexUnavailable(
                f"cannot reach {shown}: {exc or type(exc).__name__}", context={"url": shown}
            ) from None

    def _send(
        self, method: str, url: str, headers: dict[str, str] | None, timeout: dict[str, float | None]
    ) -> Answer:
        """The answer at the end of at most `_MAX_REDIRECTS` redirects, its body not yet read.

        Redirects are followed for GET and HEAD as browsers do: same method, the `Location`
        resolved against the URL that answered, http and https only (`lockd.index.urls`). The
        credential added is the one for the host each hop goes to, so none reaches another host.
        """
        # Callers name headers as `_headers` does ("Accept-Encoding"), so a plain dict overrides.
        fields = self._headers if headers is None else {**self._headers, **headers}
        target = parse_request_url(url)
        for _ in range(_MAX_REDIRECTS + 1):
            answer = self._send_once(method, target, fields, timeout)
            location = answer.headers.get("location") if answer.status_code in _REDIRECTS else ""
            if not location:
                return answer
            answer.close()
            target = redirect_target(target, location)
        raise _TooManyRedirects(f"more than {_MAX_REDIRECTS} redirects")

    def _send_once(
        self, method: str, target: RequestUrl, fields: dict[str, str], timeout: dict[str, float | None]
    ) -> Answer:
        sent = [(b"Host", target.netloc.encode("ascii"))]
        sent += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields.items()]
        credential = self._credentials.for_url(target) if self._credentials else None
        if credential is not None:
            sent.append((b"Authorization", credential.header.encode("latin-1")))
        response = self._connections.handle_request(request_to(method, target, sent, timeout))
        return Answer(response.status, response.headers, target.text, response.stream)

    def read_ok(self, response: Answer, url: str, limit: BodyLimit) -> bytes:
        """The decoded body of a successful answer, within `limit`; an error status raises `IndexUnavailable`."""
        self.raise_for_status(response, url)
        return read_limited(response, url, limit, self._counters)

    def raise_for_status(self, response: Answer, url: str) -> None:
        if response.status_code in (401, 403):
            raise self._refused(url, str(response.url), response.status_code)
        if response.status_code >= 400:
            raise IndexUnavailable(
                f"{url} answered HTTP {response.status_code}",
                context={"url": url, "status": response.status_code},
            )

    def file_chunks(self, response: Answer, file: DistFile, limit: BodyLimit) -> Iterator[bytes]:
        """A file's bytes as they arrive (not decoded: they are what its hash is of), within `limit`."""
        return limited_chunks(response, file.url, limit, self._counters, decode=False)

    def stream_verified(
        self, response: Answer, file: DistFile, sink: IO[bytes] | None, limit: BodyLimit
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

    def range_body(self, response: Answer, file: DistFile, length: int) -> tuple[bytes, int]:
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
        host = parse_request_url(answered).host_key
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


def request_to(
    method: str, target: RequestUrl, headers: Sequence[tuple[bytes, bytes]], timeouts: Timeouts
) -> Request:
    """The request for `target` as sent: `headers` in order (Host among them), then `timeouts`."""
    return Request(
        method=method.encode("ascii"),
        scheme=target.scheme.encode("ascii"),
        host=target.host.encode("ascii"),
        port=target.connect_port,
        target=target.target.encode("ascii"),
        headers=headers,
        timeouts=timeouts,
    )


def budget_spent_reading(url: str) -> ResolutionTimeout:
    """What a read from an index that the resolution's deadline ended raises."""
    return ResolutionTimeout(
        f"resolution exceeded its time budget while reading {url}",
        hint="the index answers too slowly for the budget; retry later, or raise LOCKD_RESOLVE_TIMEOUT",
        context={"url": url},
    )


def _content_range_total(header: str | None) -> int | None:
    if not header:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    return int(match.group(1)) if match else None
