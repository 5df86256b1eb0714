"""Keep-alive HTTP/1.1 connections to the indexes (`http11`), handed out in constant time.

httpcore's `ConnectionPool` (which lockd used before) re-examines every connection and every
queued request under one lock on each request and each response close (a poll syscall per idle
connection). With the prefetch walk's 64 fetches in flight and page parsing holding the GIL,
threads queued on that lock were a third of a resolution's samples. Here a request takes a slot
(at most `max_connections` at once, waiting no longer than its pool timeout), then the most
recently used idle connection to its origin, checked once, or a new one; closing the response
gives the connection back. A kept-alive connection its server closed unseen (`StaleConnection`:
nothing of an answer arrived) is replaced by a new one, once. Open connections never exceed
`max_connections`: the longest idle one of another origin is closed to make room. Sockets come
from the network backend given (`network.DeadlineBackend`), so every socket operation still
ends at the caller's deadline.

The TLS context is made when the first https connection is opened: loading the CA bundle costs
~20 ms of CPU, which a plain-http index never needs and which `lockd lock` would otherwise pay
before its first request (the load releases the GIL, so it overlaps the CLI's own imports).
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from lockd.index.http11 import Connection
from lockd.index.wire import PoolTimeout, Request, Response, StaleConnection

if TYPE_CHECKING:
    from lockd.index.network import DeadlineBackend

__all__ = ["ConnectionSlots"]

_Origin = tuple[bytes, bytes, int]  # scheme, host, port


class ConnectionSlots:
    """A minimal connection pool: bounded, per-origin LIFO reuse, no lock held while waiting."""

    def __init__(
        self,
        *,
        tls_context: Callable[[], ssl.SSLContext],
        max_connections: int,
        keepalive_expiry: float | None,
        retries: int,
        network_backend: DeadlineBackend,
    ) -> None:
        self._make_tls_context = tls_context
        self._tls_context: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._retries = retries
        self._network_backend = network_backend
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: dict[_Origin, deque[Connection]] = {}
        self._idle_order: deque[tuple[_Origin, Connection]] = deque()  # oldest first
        self._open = 0
        self._closed = False

    def handle_request(self, request: Request) -> Response:
        if not self._slots.acquire(timeout=request.timeouts.get("pool")):
            raise PoolTimeout("no free connection to the index in time")
        origin = request.origin
        try:
            connection, response = self._exchange(request, origin)
        except BaseException:
            self._slots.release()
            raise
        return Response(
            response.status, response.headers, _ReturnedOnClose(response.stream, self, origin, connection)
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [connection for _origin, connection in self._idle_order]
            self._idle.clear()
            self._idle_order.clear()
            self._open -= len(idle)
        for connection in idle:
            connection.close()

    def __enter__(self) -> ConnectionSlots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---

    def _exchange(self, request: Request, origin: _Origin) -> tuple[Connection, Response]:
        fresh_only = False
        while True:
            connection = self._checkout(origin, fresh_only=fresh_only)
            try:
                return connection, connection.handle_request(request)
            except StaleConnection:
                connection.close()
                self._forget(connection)
                fresh_only = True  # its server closed it unseen: a new connection, once
            except BaseException:
                connection.close()
                self._forget(connection)
                raise

    def _tls_for(self, origin: _Origin) -> ssl.SSLContext | None:
        if origin[0] != b"https":
            return None
        with self._tls_lock:  # made once; https requests arriving meanwhile wait for it
            if self._tls_context is None:
                self._tls_context = self._make_tls_context()
            return self._tls_context

    def _checkout(self, origin: _Origin, *, fresh_only: bool) -> Connection:
        tls_context = self._tls_for(origin)
        evicted: list[Connection] = []
        try:
            while True:
                with self._lock:
                    stack = None if fresh_only else self._idle.get(origin)
                    connection = stack.pop() if stack else None
                    if connection is not None:
                        self._idle_order.remove((origin, connection))
                    elif self._open >= self._max_connections and self._idle_order:
                        # Room for this origin: the longest idle connection of another one goes.
                        other, oldest = self._idle_order.popleft()
                        self._idle[other].remove(oldest)
                        self._open -= 1
                        evicted.append(oldest)
                    if connection is None:
                        self._open += 1
                        return Connection(
                            origin,
                            ssl_context=tls_context,
                            keepalive_expiry=self._keepalive_expiry,
                            retries=self._retries,
                            backend=self._network_backend,
                        )
                if connection.is_idle() and not connection.has_expired():
                    return connection
                connection.close()  # the server closed it, or it idled past the keep-alive expiry
                self._forget(connection)
        finally:
            for old in evicted:
                old.close()

    def _give_back(self, origin: _Origin, connection: Connection) -> None:
        try:
            keep = connection.is_idle() and not connection.is_closed()
            if keep:
                with self._lock:
                    if not self._closed:
                        self._idle.setdefault(origin, deque()).append(connection)
                        self._idle_order.append((origin, connection))
                        return
            connection.close()
            self._forget(connection)
        finally:
            self._slots.release()

    def _forget(self, connection: Connection) -> None:
        with self._lock:
            self._open -= 1


class _ReturnedOnClose(Iterable[bytes]):
    """A response body that gives its connection back to the pool once closed."""

    def __init__(
        self,
        stream: Iterable[bytes],
        pool: ConnectionSlots,
        origin: _Origin,
        connection: Connection,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self._pool._give_back(self._origin, self._connection)
