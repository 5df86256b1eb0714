"""What one HTTP/1.1 exchange with an index is: the request sent, the response read, and how it fails.

`lockd.index.http11` speaks the protocol on one connection, `lockd.index.connections` pools
those connections and `lockd.index.network` gives them sockets bounded by the deadline. The
errors sort as the fetcher reports them: a `TransportTimeout` is the index's slowness (or the
deadline's doing), anything else a `TransportError` the index is unreachable by. Their names
are the ones httpcore used, which lockd spoke HTTP through before: they say the same things.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "LocalProtocolError",
    "NetworkError",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "StaleConnection",
    "Timeouts",
    "TransportError",
    "TransportTimeout",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
]

Timeouts = Mapping[str, float | None]  # "connect", "read", "write", "pool": seconds, None for none


class TransportError(Exception):
    """An exchange that failed below HTTP: no answer to report, only this."""


class TransportTimeout(TransportError):
    pass


class ConnectTimeout(TransportTimeout):
    pass


class ReadTimeout(TransportTimeout):
    pass


class WriteTimeout(TransportTimeout):
    pass


class PoolTimeout(TransportTimeout):
    pass


class NetworkError(TransportError):
    pass


class ConnectError(NetworkError):
    pass


class ReadError(NetworkError):
    pass


class WriteError(NetworkError):
    pass


class RemoteProtocolError(TransportError):
    """The index answered something that is not HTTP/1.1, or broke off its answer."""


class LocalProtocolError(TransportError):
    """lockd was about to send something that is not HTTP/1.1 (a header with a line break)."""


class UnsupportedProtocol(TransportError):
    pass


class StaleConnection(TransportError):
    """A kept-alive connection the server had closed before it read the request: try a new one.

    Raised only when nothing of an answer arrived, so sending the (idempotent) request again on a
    new connection cannot repeat anything the index did.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request as sent: method, where, header fields in order, and its timeouts."""

    method: bytes
    scheme: bytes
    host: bytes
    port: int
    target: bytes
    headers: Sequence[tuple[bytes, bytes]]
    timeouts: Timeouts

    @property
    def origin(self) -> tuple[bytes, bytes, int]:
        """Scheme, host and port: which kept-alive connections can carry this request."""
        return (self.scheme, self.host, self.port)


class Response:
    """A response whose body arrives as it is iterated; `close` ends it (and frees its connection).

    Not a value, unlike `Request`: it holds the live body of a connection.
    """

    __slots__ = ("headers", "status", "stream")

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]], stream: Iterable[bytes]) -> None:
        self.status = status
        self.headers = headers  # (name, value) as received; names keep their case
        self.stream = stream

    def iter_stream(self) -> Iterator[bytes]:
        yield from self.stream

    def read(self) -> bytes:
        return b"".join(self.stream)

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
