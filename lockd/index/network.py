"""The sockets under the index client, made to wait no longer than the current deadline (`lockd.deadline`).

Socket timeouts bound each socket operation, never a whole response: a server that sends one
byte a second never trips a 30 s read timeout. Here every connect, read, write and TLS
handshake gets at most the seconds left before the deadline of the calling thread, and none
starts once it has passed, so a drip-fed body ends at the deadline (a `wire.ReadTimeout`,
which the fetcher reports as `ResolutionTimeout`). Without a deadline nothing changes.

A read also takes, without waiting, whatever else the socket already holds, up to the size
`http11` asks for (64 KiB): a TLS socket hands over one 16 KiB record per `recv`, and each
chunk then passes through the connection and the body limits. Measured on five of PyPI's
JSON pages (10.6 MB, 10 interleaved runs, medians): 33 → 27 ms of CPU to fetch them.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from contextlib import suppress

from lockd.deadline import seconds_left
from lockd.index.addresses import HostAddresses, LookupTimeout
from lockd.index.connections import ConnectionSlots
from lockd.index.tls import tls_context
from lockd.index.wire import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    TransportTimeout,
    WriteError,
    WriteTimeout,
)

__all__ = ["DeadlineBackend", "SocketStream", "index_connections"]

_poll = getattr(select, "poll", None)
_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default, which lockd had)


def _clamped(timeout: float | None, error: type[TransportTimeout]) -> float | None:
    left = seconds_left()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the deadline of this work has passed")
    return left if timeout is None else min(timeout, left)


class SocketStream:
    """A connected socket whose every operation ends by the deadline of the thread that performs it."""

    __slots__ = ("_socket", "_tls")

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        # A plain socket's recv already takes all it holds: only TLS reads are gathered.
        self._tls = isinstance(sock, ssl.SSLSocket)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        sock = self._socket
        try:
            sock.settimeout(_clamped(timeout, ReadTimeout))
            data = sock.recv(max_bytes)
        except TimeoutError:
            raise ReadTimeout("the index sent nothing in time") from None
        except OSError as exc:
            raise ReadError(str(exc) or type(exc).__name__) from None
        if not self._tls or not data or len(data) >= max_bytes:
            return data
        return _gathered(sock, data, max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._socket.settimeout(_clamped(timeout, WriteTimeout))
            self._socket.sendall(buffer)  # the timeout bounds the whole send
        except TimeoutError:
            raise WriteTimeout("the index took nothing in time") from None
        except OSError as exc:
            raise WriteError(str(exc) or type(exc).__name__) from None

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None = None
    ) -> SocketStream:
        try:
            self._socket.settimeout(_clamped(timeout, ConnectTimeout))
            # As bytes, as for the connection: the host is ASCII already (`lockd.index.urls`).
            tls = context.wrap_socket(self._socket, server_hostname=server_hostname.encode("ascii"))
        except TimeoutError:
            self.close()
            raise ConnectTimeout(f"no TLS handshake with {server_hostname} in time") from None
        except OSError as exc:  # ssl.SSLError among them: a bad certificate, no TLS at all
            self.close()
            raise ConnectError(str(exc) or type(exc).__name__) from None
        return SocketStream(tls)

    def is_readable(self) -> bool:
        """Whether the socket holds something (or its end) while no answer is awaited: then it is spent."""
        if isinstance(self._socket, ssl.SSLSocket) and self._socket.pending():
            return True
        try:
            if _poll is None:  # Windows
                return bool(select.select([self._socket], [], [], 0)[0])
            # poll, not select: a server holding more than 1024 descriptors would find every
            # kept-alive connection "readable" through select's ValueError, and keep none.
            poller = _poll()
            poller.register(self._socket, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):  # closed under us
            return True

    def close(self) -> None:
        with suppress(OSError):
            self._socket.close()


def _gathered(sock: socket.socket, first: bytes, max_bytes: int) -> bytes:
    """`first` and what `sock` holds already, up to `max_bytes` in all; never waits.

    An error here is left for the next read to meet: nothing was taken from the socket by a
    `recv` that raised, and the bytes gathered so far are the caller's.
    """
    parts = [first]
    total = len(first)
    sock.settimeout(0.0)
    while total < max_bytes:
        try:
            more = sock.recv(max_bytes - total)
        except OSError:  # nothing more yet (SSLWantReadError, BlockingIOError), or a failure
            break
        if not more:
            break  # the end: the next read sees it again
        parts.append(more)
        total += len(more)
    return first if len(parts) == 1 else b"".join(parts)


class DeadlineBackend:
    """TCP connections to an index, to each of its addresses in turn, bounded by the caller's deadline."""

    def __init__(self, addresses: HostAddresses | None = None) -> None:
        self._addresses = HostAddresses() if addresses is None else addresses

    def connect_tcp(self, host: str, port: int, timeout: float | None = None) -> SocketStream:
        timeout = _clamped(timeout, ConnectTimeout)
        try:
            addresses = self._addresses.addresses(host, port, timeout)
        except LookupTimeout as exc:
            raise ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise ConnectError(f"cannot resolve {host}: {exc}") from None
        for i, address in enumerate(addresses):
            try:
                # As bytes, for `socket` not to load the IDNA codec for an address (8 ms). typeshed
                # says str; `getaddrinfo` takes bytes too.
                literal = address.encode("ascii")
                sock = socket.create_connection((literal, port), timeout)  # type: ignore[arg-type]
            except TimeoutError:
                if i == len(addresses) - 1:
                    raise ConnectTimeout(f"no connection to {host}:{port} in time") from None
            except OSError as exc:
                if i == len(addresses) - 1:
                    raise ConnectError(str(exc) or type(exc).__name__) from None
            else:  # as socket.create_connection does: the next address of the host, else this one
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return SocketStream(sock)
        raise ConnectError(f"{host} has no address")

    def sleep(self, seconds: float) -> None:
        left = seconds_left()
        time.sleep(seconds if left is None else max(0.0, min(seconds, left)))


def index_connections(*, max_connections: int, retries: int = 1) -> ConnectionSlots:
    """Keep-alive connections to the indexes on `DeadlineBackend` sockets, verified by `tls_context`.

    `retries`: a connection that fails to open is tried again this many times, as httpx did.
    """
    return ConnectionSlots(
        tls_context=tls_context,
        max_connections=max_connections,
        keepalive_expiry=_KEEPALIVE_EXPIRY,
        retries=retries,
        network_backend=DeadlineBackend(),
    )
