"""One keep-alive HTTP/1.1 connection to an index: a request written, its answer read as framed.

lockd sends GETs (and HEADs) with no body and reads one answer at a time, so the protocol it
needs is small: a head (status line and fields, at most `MAX_HEAD` bytes), then a body framed by
`Transfer-Encoding: chunked`, `Content-Length`, or the end of the connection (RFC 9112 6.3). An
index is hostile input: a head or chunk line past its bound, a length that is no number, two
lengths that disagree, or an answer cut short is a `RemoteProtocolError`, never a guess.

This replaced httpcore and h11, whose general state machines made a 64 KiB range request cost
0.43-0.44 ms of CPU through lockd's fetcher against 0.25-0.26 ms now (`python -m
bench.range_requests`); a cold 200-pin `lockd lock` sends about 400 of them, from 70 threads
that share one GIL. Sockets come from `lockd.index.network`, each read and write bounded by the
caller's deadline.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from lockd.index.http11_body import MAX_HEAD, READ_BYTES, Body, framing_of
from lockd.index.wire import (
    ConnectError,
    ConnectTimeout,
    LocalProtocolError,
    ReadError,
    RemoteProtocolError,
    Request,
    Response,
    StaleConnection,
    Timeouts,
    UnsupportedProtocol,
    WriteError,
)

if TYPE_CHECKING:
    import ssl

    from lockd.index.network import DeadlineBackend, SocketStream

__all__ = ["MAX_HEAD", "Connection"]

_MAX_INTERIM = 16  # 1xx answers before the real one
_STATUS = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [^\x00\r\n]*)?")
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

_NEW, _ACTIVE, _IDLE, _CLOSED = range(4)


class Connection:
    """One connection to one origin, opened at its first request; reused while each answer ends cleanly."""

    def __init__(
        self,
        origin: tuple[bytes, bytes, int],
        *,
        ssl_context: ssl.SSLContext | None,
        keepalive_expiry: float | None,
        retries: int,
        backend: DeadlineBackend,
    ) -> None:
        scheme, host, port = origin
        if scheme not in (b"http", b"https"):
            raise UnsupportedProtocol(f"lockd speaks http and https, not {scheme.decode('latin-1')!r}")
        self._https = scheme == b"https"
        self._host = host.decode("ascii")
        self._port = port
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._retries = retries
        self._backend = backend
        self._stream: SocketStream | None = None
        self._buffer = b""  # bytes read past the last answer's head, not yet its body's
        self._state = _NEW
        self._expires_at: float | None = None

    def handle_request(self, request: Request) -> Response:
        """Sends `request` and reads its answer's head; the body streams as the answer is iterated.

        Raises `StaleConnection` when a reused connection turns out closed before any of the
        answer arrived (the pool then tries a new one); any other failure closes the connection.
        """
        head = _request_head(request)
        reused = self._stream is not None
        self._state = _ACTIVE
        try:
            if self._stream is None:
                self._stream = self._connect(request.timeouts)
            stream = self._stream
            try:
                stream.write(head, request.timeouts.get("write"))
            except WriteError as exc:
                if reused:
                    raise StaleConnection(f"the kept-alive connection was closed ({exc})") from None
                raise
            status, fields, keep, framing = self._read_head(request, reused)
        except BaseException:
            self.close()
            raise
        return Response(status, fields, Body(self, request.timeouts.get("read"), framing, keep))

    def is_idle(self) -> bool:
        return self._state == _IDLE

    def is_closed(self) -> bool:
        return self._state == _CLOSED

    def has_expired(self) -> bool:
        """An idle connection past its keep-alive expiry, or one its server has closed (or sent to)."""
        if self._state != _IDLE or self._stream is None:
            return False
        if self._expires_at is not None and time.monotonic() > self._expires_at:
            return True
        return self._stream.is_readable()

    def close(self) -> None:
        self._state = _CLOSED
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    # --- internals ---

    def _connect(self, timeouts: Timeouts) -> SocketStream:
        timeout = timeouts.get("connect")
        attempt = 0
        while True:
            try:
                stream = self._backend.connect_tcp(self._host, self._port, timeout)
                if self._https:
                    assert self._ssl_context is not None
                    return stream.start_tls(self._ssl_context, self._host, timeout)
                return stream
            except (ConnectError, ConnectTimeout):
                if attempt == self._retries:
                    raise
                if attempt:  # as httpcore did: the first retry at once, then 1 s, 2 s, …
                    self._backend.sleep(0.5 * 2**attempt)
                attempt += 1

    def _read_head(self, request: Request, reused: bool) -> tuple[int, list[tuple[bytes, bytes]], bool, int]:
        """The answer's status, fields, whether the connection stays open, and how its body is framed."""
        stream = self._stream
        assert stream is not None
        timeout = request.timeouts.get("read")
        buffer = self._buffer
        interim = 0
        while True:
            end, gap = _head_end(buffer)
            while end < 0:
                if len(buffer) > MAX_HEAD:
                    raise RemoteProtocolError(f"the answer's head is over {MAX_HEAD // 1024} KiB")
                fresh = reused and not buffer and not interim  # nothing of an answer yet
                try:
                    data = stream.read(READ_BYTES, timeout)
                except ReadError as exc:
                    if fresh:
                        raise StaleConnection(f"the kept-alive connection was closed ({exc})") from None
                    raise
                if not data:
                    if fresh:
                        raise StaleConnection("the kept-alive connection was closed")
                    raise RemoteProtocolError("Server disconnected without sending a response.")
                buffer += data
                end, gap = _head_end(buffer)
            lines = buffer[:end].split(b"\n")
            buffer = buffer[end + gap :]
            version, status = _status_line(lines[0].removesuffix(b"\r"))
            if 100 <= status < 200 and status != 101:
                interim += 1
                if interim > _MAX_INTERIM:
                    raise RemoteProtocolError("more than 16 interim (1xx) answers")
                continue
            if status == 101:
                raise RemoteProtocolError("the index switched protocols (101), which lockd never asks for")
            fields = _fields(lines[1:])
            self._buffer = buffer
            keep, framing = framing_of(request, version, status, fields)
            return status, fields, keep, framing

    def finish(self, keep: bool, leftover: bytes) -> None:
        """The body was read to its end: the connection is idle, or closed if it cannot be reused."""
        if not keep or leftover or self._state != _ACTIVE:
            self.close()
            return
        self._buffer = b""
        self._state = _IDLE
        self._expires_at = (
            None if self._keepalive_expiry is None else time.monotonic() + self._keepalive_expiry
        )

    def take_buffer(self) -> bytes:
        """What was read past the answer's head: the start of its body."""
        buffer, self._buffer = self._buffer, b""
        return buffer

    def read(self, size: int, timeout: float | None) -> bytes:
        """Up to `size` more bytes of the answer's body; b"" at the connection's end."""
        if self._stream is None:
            raise RemoteProtocolError("the connection was closed while its answer was read")
        return self._stream.read(size, timeout)


def _request_head(request: Request) -> bytes:
    parts = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
    if _BAD_VALUE.search(request.target) or b" " in request.target:
        raise LocalProtocolError("the request target holds a space or a line break")
    for name, value in request.headers:
        if not _NAME.fullmatch(name) or _BAD_VALUE.search(value):
            raise LocalProtocolError(f"illegal header {name[:40]!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _head_end(buffer: bytes) -> tuple[int, int]:
    """Where the head ends in `buffer` and the blank line's length; (-1, 0) while it has not."""
    # Searched no further than a head may reach, nor a bare-LF end past a CRLF one: the buffer
    # holds the start of the body too, 64 KiB of it that a search would otherwise scan twice.
    crlf = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    lf = buffer.find(b"\n\n", 0, crlf + 2 if crlf >= 0 else MAX_HEAD + 2)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return (crlf, 4) if crlf >= 0 else (-1, 0)


def _status_line(line: bytes) -> tuple[int, int]:
    match = _STATUS.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def _fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for raw in lines:
        line = raw.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):  # obs-fold: a continuation of the field before (RFC 9112 5.2)
            if not fields:
                raise RemoteProtocolError("the answer's head starts with a continuation line")
            name, value = fields[-1]
            fields[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" "))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _NAME.fullmatch(name):
            raise RemoteProtocolError(f"illegal header line {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise RemoteProtocolError(f"illegal value of header {name[:40]!r}")
        fields.append((name, value))
    return fields
