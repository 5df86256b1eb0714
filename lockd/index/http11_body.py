"""An HTTP/1.1 answer's body as framed (RFC 9112 6.3): by chunks, by its length, or by the connection's end.

`framing_of` reads the framing off an answer's head, `Body` reads the body as it is iterated,
each read bounded by the connection's deadline-bound socket. A chunk size that is no hex
number, a chunk line or trailer past its bound, two lengths that disagree or a body cut short
is a `RemoteProtocolError`. A body read to its end leaves its connection idle for the next
request, unless the index said `Connection: close` or sent more than it framed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lockd.index.wire import RemoteProtocolError, Request

if TYPE_CHECKING:
    from lockd.index.http11 import Connection

__all__ = ["CHUNKED", "MAX_HEAD", "READ_BYTES", "UNTIL_CLOSE", "Body", "framing_of"]

MAX_HEAD = 64 * 1024  # a response's status line and fields, or a trailer; PyPI's are under 2 KiB
_MAX_CHUNK_LINE = 4096  # a chunk's size and its extensions
READ_BYTES = 65536  # asked of the socket at a time (a TLS read gathers what it holds up to this)
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

# Framing of a body: a length (>= 0), or one of these.
CHUNKED = -1
UNTIL_CLOSE = -2


class Body:
    """An answer's body as it arrives; `close` before its end closes the connection."""

    __slots__ = ("_connection", "_done", "_framing", "_keep", "_timeout")

    def __init__(self, connection: Connection, timeout: float | None, framing: int, keep: bool) -> None:
        self._connection = connection
        self._timeout = timeout
        self._framing = framing
        self._keep = keep
        self._done = False
        if framing == 0:
            self._end(connection.take_buffer())

    def __iter__(self) -> Iterator[bytes]:
        if self._done:
            return
        try:
            if self._framing >= 0:
                yield from self._sized(self._framing)
            elif self._framing == CHUNKED:
                yield from self._chunked()
            else:
                yield from self._until_close()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._connection.close()

    def _end(self, leftover: bytes) -> None:
        self._done = True
        self._connection.finish(self._keep, leftover)

    def _read(self, size: int) -> bytes:
        return self._connection.read(size, self._timeout)

    def _sized(self, length: int) -> Iterator[bytes]:
        data = self._connection.take_buffer()
        if len(data) >= length:
            self._end(data[length:])
            yield data[:length]
            return
        left = length - len(data)
        if data:
            yield data
        while True:
            data = self._read(min(left, READ_BYTES))
            if not data:
                raise RemoteProtocolError(
                    f"peer closed connection without sending complete message body: "
                    f"received {length - left} bytes, expected {length}"
                )
            left -= len(data)
            if left <= 0:  # a socket read never returns more than asked
                self._end(b"")
                yield data
                return
            yield data

    def _until_close(self) -> Iterator[bytes]:
        data = self._connection.take_buffer()
        if data:
            yield data
        while data := self._read(READ_BYTES):
            yield data
        self.close()  # the connection's end was the body's: nothing more can go over it

    def _chunked(self) -> Iterator[bytes]:
        reader = _Buffered(self, self._connection.take_buffer())
        while True:
            line = reader.line(_MAX_CHUNK_LINE, "chunk size line")
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise RemoteProtocolError(f"bad chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            while size:
                data = reader.take(size)
                size -= len(data)
                yield data
            reader.chunk_end()
        trailer = 0
        while line := reader.line(MAX_HEAD, "trailer"):
            trailer += len(line)
            if trailer > MAX_HEAD:
                raise RemoteProtocolError(f"the trailer is over {MAX_HEAD // 1024} KiB")
        self._end(reader.rest())


class _Buffered:
    """Lines and sized reads over a body's bytes, for chunked framing."""

    __slots__ = ("_body", "_data")

    def __init__(self, body: Body, data: bytes) -> None:
        self._body = body
        self._data = data

    def _more(self, what: str) -> None:
        data = self._body._read(READ_BYTES)
        if not data:
            raise RemoteProtocolError(
                f"peer closed connection without sending complete message body: in a {what}"
            )
        self._data += data

    def line(self, limit: int, what: str) -> bytes:
        """The next line, without its line end (CRLF, or a bare LF)."""
        while (end := self._data.find(b"\n")) < 0:
            if len(self._data) > limit:
                raise RemoteProtocolError(f"a {what} longer than {limit} bytes")
            self._more(what)
        if end > limit + 1:
            raise RemoteProtocolError(f"a {what} longer than {limit} bytes")
        line, self._data = self._data[:end], self._data[end + 1 :]
        return line.removesuffix(b"\r")

    def chunk_end(self) -> None:
        """Passes the line end after a chunk's data, which must come right there."""
        while len(self._data) < 2 and self._data != b"\n":
            self._more("chunk end")
        if self._data.startswith(b"\r\n"):
            self._data = self._data[2:]
        elif self._data.startswith(b"\n"):
            self._data = self._data[1:]
        else:
            raise RemoteProtocolError("a chunk did not end where its size said")

    def take(self, most: int) -> bytes:
        """Up to `most` bytes, at least one."""
        if not self._data:
            self._more("chunk")
        data, self._data = self._data[:most], self._data[most:]
        return data

    def rest(self) -> bytes:
        return self._data


def framing_of(
    request: Request, version: int, status: int, fields: list[tuple[bytes, bytes]]
) -> tuple[bool, int]:
    """Whether the connection outlives this answer, and how the body is framed (RFC 9112 6.3, 9.3)."""
    transfer: list[bytes] = []
    lengths: set[bytes] = set()
    keep = version == 1
    for name, value in fields:
        key = name.lower()
        if key == b"transfer-encoding":
            transfer += (part.strip(b" \t").lower() for part in value.split(b","))
        elif key == b"content-length":
            for each in value.split(b","):
                length = each.strip(b" \t")
                if not _DIGITS.fullmatch(length):
                    raise RemoteProtocolError(f"bad Content-Length {value[:40]!r}")
                lengths.add(length)
        elif key == b"connection" and b"close" in (t.strip(b" \t").lower() for t in value.split(b",")):
            keep = False
    if request.method == b"HEAD" or status in (204, 304):
        return keep, 0
    if transfer:
        # Only chunked, as h11 accepts: a transfer coding lockd would have to undo itself (gzip
        # under chunked, or alone) is no answer it can trust the framing of.
        if transfer != [b"chunked"]:
            raise RemoteProtocolError(f"unsupported Transfer-Encoding {b', '.join(transfer)[:60]!r}")
        return keep and not lengths, CHUNKED
    if len(lengths) > 1:
        raise RemoteProtocolError("the answer gives two different Content-Lengths")
    if lengths:
        return keep, int(lengths.pop())
    return False, UNTIL_CLOSE
