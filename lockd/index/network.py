"""The sockets under the index client, made to wait no longer than the current deadline (`lockd.deadline`).

Socket timeouts bound each socket operation, never a whole response: a server that sends one
byte a second never trips a 30 s read timeout. Here every connect, read, write and TLS
handshake gets at most the seconds left before the deadline of the calling thread, and none
starts once it has passed, so a drip-fed body ends at the deadline (httpcore raises its
timeout, which the fetcher reports as `ResolutionTimeout`). Without a deadline nothing changes.

A read also takes, without waiting, whatever else the socket already holds, up to the size
httpcore asks for (64 KiB): a TLS socket hands over one 16 KiB record per `recv`, and each
chunk then passes through h11, httpcore and the body limits. Measured on five of PyPI's
JSON pages (10.6 MB, 10 interleaved runs, medians): 33 → 27 ms of CPU to fetch them.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

from lockd.deadline import seconds_left
from lockd.index.addresses import HostAddresses, LookupTimeout
from lockd.index.connections import ConnectionSlots
from lockd.index.tls import tls_context

__all__ = ["DeadlineBackend", "index_connections"]

_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default, which lockd had)


def _clamped(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    left = seconds_left()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the deadline of this work has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline of the thread that performs it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        sock = stream.get_extra_info("socket")
        # A plain socket's recv already takes all it holds: only TLS reads are gathered.
        self._socket: socket.socket | None = sock if isinstance(sock, ssl.SSLSocket) else None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._stream.read(max_bytes, _clamped(timeout, httpcore.ReadTimeout))
        if self._socket is None or not data or len(data) >= max_bytes:
            return data
        return _gathered(self._socket, data, max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamped(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _gathered(sock: socket.socket, first: bytes, max_bytes: int) -> bytes:
    """`first` and what `sock` holds already, up to `max_bytes` in all; never waits.

    An error here is left for the next read to meet: nothing was taken from the socket by a
    `recv` that raised, and the bytes gathered so far are the caller's.
    """
    parts = [first]
    total = len(first)
    previous = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        while total < max_bytes:
            try:
                more = sock.recv(max_bytes - total)
            except OSError:  # nothing more yet (SSLWantReadError, BlockingIOError), or a failure
                break
            if not more:
                break  # the end: the next read sees it again
            parts.append(more)
            total += len(more)
    finally:
        sock.settimeout(previous)
    return first if len(parts) == 1 else b"".join(parts)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous sockets, each operation bounded by the caller's deadline."""

    def __init__(self, addresses: HostAddresses | None = None) -> None:
        self._backend = httpcore.SyncBackend()
        self._addresses = HostAddresses() if addresses is None else addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _clamped(timeout, httpcore.ConnectTimeout)
        try:
            addresses = self._addresses.addresses(host, port, timeout)
        except LookupTimeout as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        options = list(socket_options or [])
        for address in addresses[:-1]:
            try:
                stream = self._backend.connect_tcp(address, port, timeout, local_address, options)
            except httpcore.ConnectError:
                continue  # as socket.create_connection does: the next address of the host
            return _DeadlineStream(stream)
        last = self._backend.connect_tcp(addresses[-1], port, timeout, local_address, options)
        return _DeadlineStream(last)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _clamped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        left = seconds_left()
        self._backend.sleep(seconds if left is None else max(0.0, min(seconds, left)))


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
