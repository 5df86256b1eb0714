"""`lockd.index.connections`: keep-alive reuse, the connection bound, and connections given back."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from lockd.index.connections import ConnectionSlots
from lockd.index.fetcher import Fetcher
from lockd.index.network import DeadlineBackend, index_connections
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.index.tls import tls_context
from lockd.index.wire import ConnectError, PoolTimeout, Response
from tests.support import fetched, loopback_http, slots_get


class _Counting(BaseHTTPRequestHandler):
    """Answers 64 KiB; notes each client port it saw and how many requests ran at once."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    lock = threading.Lock()
    ports: ClassVar[set[int]] = set()
    running = 0
    most_running = 0
    close_each = False
    body = b"x" * 65536

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.ports.add(self.client_address[1])
            cls.running += 1
            cls.most_running = max(cls.most_running, cls.running)
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            if cls.close_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(self.body)
        finally:
            with cls.lock:
                cls.running -= 1


def _handler(*, close_each: bool = False) -> type[_Counting]:
    return type(
        "Handler", (_Counting,), {"ports": set(), "running": 0, "most_running": 0, "close_each": close_each}
    )


@contextmanager
def _fetcher(max_connections: int) -> Iterator[Fetcher]:
    fetcher = Fetcher(ClientOptions(timeout=5.0, max_connections=max_connections), FetchCounters())
    try:
        yield fetcher
    finally:
        fetcher.close()


def _size(fetcher: Fetcher, url: str) -> int:
    return len(fetched(fetcher, url)[2])


def _get(slots: ConnectionSlots, url: str, *, pool: float | None = None) -> Response:
    return slots_get(slots, url, None if pool is None else {"pool": pool})


@pytest.fixture
def counting() -> Iterator[tuple[str, type[_Counting]]]:
    handler = _handler()
    with loopback_http(handler) as host:
        yield f"http://{host}/", handler


def test_requests_one_after_another_reuse_one_connection(counting: tuple[str, type[_Counting]]) -> None:
    url, handler = counting
    with _fetcher(8) as fetcher:
        for _ in range(20):
            assert _size(fetcher, url) == 65536
    assert len(handler.ports) == 1


def test_parallel_requests_never_exceed_the_bound(counting: tuple[str, type[_Counting]]) -> None:
    url, handler = counting
    with (
        _fetcher(3) as fetcher,
        ThreadPoolExecutor(12) as pool,
    ):
        sizes = list(pool.map(lambda _: _size(fetcher, url), range(60)))
    assert sizes == [65536] * 60
    assert handler.most_running <= 3
    assert len(handler.ports) <= 3  # connections are reused, not opened per request


def test_a_connection_the_server_closes_is_replaced() -> None:
    handler = _handler(close_each=True)
    with (
        loopback_http(handler) as host,
        _fetcher(1) as fetcher,
    ):
        for _ in range(5):
            assert fetched(fetcher, f"http://{host}/")[0] == 200
    assert len(handler.ports) == 5


def test_a_body_left_unread_gives_its_slot_back(counting: tuple[str, type[_Counting]]) -> None:
    url, handler = counting
    with _fetcher(1) as fetcher:
        with fetcher.request("GET", url) as response:
            assert response.status_code == 200  # closed without reading: the connection is dropped
        assert _size(fetcher, url) == 65536
    assert len(handler.ports) == 2


def test_waiting_for_a_connection_ends_at_the_pool_timeout(counting: tuple[str, type[_Counting]]) -> None:
    url, _handler_class = counting
    with index_connections(max_connections=1) as slots:
        response = _get(slots, url)
        with pytest.raises(PoolTimeout):
            _get(slots, url, pool=0.2)
        response.close()
        response = _get(slots, url, pool=0.2)
        assert response.status == 200
        response.close()


def test_the_tls_context_is_made_at_the_first_https_connection_and_only_then(
    counting: tuple[str, type[_Counting]],
) -> None:
    url, _handler = counting
    made: list[ssl.SSLContext] = []

    def counted_tls_context() -> ssl.SSLContext:
        made.append(tls_context())
        return made[-1]

    slots = ConnectionSlots(
        tls_context=counted_tls_context,
        max_connections=2,
        keepalive_expiry=5.0,
        retries=0,
        network_backend=DeadlineBackend(),
    )
    with slots:
        for _ in range(2):
            response = _get(slots, url)
            assert len(response.read()) == 65536
            response.close()
        assert made == []  # a plain-http index never loads the CA bundle
        for _ in range(2):
            with pytest.raises(ConnectError):  # the loopback server speaks no TLS
                _get(slots, url.replace("http://", "https://"))
        assert len(made) == 1
