"""`lockd.index.addresses`: one system lookup per host a minute, never a cached failure, literals as they are."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lockd.deadline import deadline_scope
from lockd.index.addresses import HostAddresses, LookupTimeout
from lockd.index.fetcher import Fetcher
from lockd.index.network import DeadlineBackend
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.index.wire import ConnectTimeout
from tests.support import fetched


class _Resolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(f"unknown {host}")
        return self.answers[host]


def test_answers_are_kept_for_their_ttl_then_asked_again() -> None:
    now = [0.0]
    resolver = _Resolver({"pypi.example": ["192.0.2.1", "2001:db8::1"]})
    addresses = HostAddresses(ttl=60.0, lookup=resolver, clock=lambda: now[0])
    for _ in range(100):
        assert addresses.addresses("pypi.example", 443) == ["192.0.2.1", "2001:db8::1"]
    assert resolver.asked == ["pypi.example"]
    now[0] = 61.0
    addresses.addresses("PyPI.example", 443)  # host names are case-insensitive
    assert resolver.asked == ["pypi.example", "pypi.example"]


def test_a_failed_lookup_is_not_kept() -> None:
    resolver = _Resolver({})
    addresses = HostAddresses(lookup=resolver)
    for _ in range(2):
        with pytest.raises(socket.gaierror):
            addresses.addresses("gone.example", 443)
    assert resolver.asked == ["gone.example", "gone.example"]


def test_address_literals_are_never_looked_up() -> None:
    resolver = _Resolver({})
    addresses = HostAddresses(lookup=resolver)
    assert addresses.addresses("127.0.0.1", 80) == ["127.0.0.1"]
    assert addresses.addresses("::1", 80) == ["::1"]
    assert resolver.asked == []


def test_threads_opening_connections_at_once_ask_once() -> None:
    resolver = _Resolver({"pypi.example": ["192.0.2.1"]})
    addresses = HostAddresses(lookup=resolver)
    start = threading.Barrier(16)

    def open_one() -> None:
        start.wait()
        addresses.addresses("pypi.example", 443)

    threads = [threading.Thread(target=open_one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert resolver.asked == ["pypi.example"]


def test_a_host_name_still_reaches_a_real_server() -> None:
    # The fetcher's transport connects to the address but keeps the URL's host (Host header, SNI).
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        fetcher = Fetcher(ClientOptions(max_connections=4), FetchCounters())
        try:
            assert fetched(fetcher, f"http://localhost:{port}/")[2] == b"ok"
        finally:
            fetcher.close()
        assert seen == [f"localhost:{port}"]
    finally:
        server.shutdown()
        server.server_close()


class _SlowResolver:
    """Answers only once released, as a system resolver waiting out a dropped reply does."""

    def __init__(self, answer: list[str]) -> None:
        self.answer = answer
        self.release = threading.Event()
        self.asked = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        self.release.wait(30)
        return self.answer


def test_a_slow_lookup_ends_at_the_callers_timeout_and_its_answer_is_kept() -> None:
    resolver = _SlowResolver(["192.0.2.7"])
    addresses = HostAddresses(lookup=resolver)
    started = time.monotonic()
    with pytest.raises(LookupTimeout):
        addresses.addresses("slow.example", 443, timeout=0.2)
    assert time.monotonic() - started < 2.0
    resolver.release.set()
    assert addresses.addresses("slow.example", 443, timeout=5.0) == ["192.0.2.7"]
    assert addresses.addresses("slow.example", 443, timeout=0.0) == ["192.0.2.7"]  # kept: no wait
    assert resolver.asked == 1


def test_a_connection_under_a_deadline_does_not_wait_for_the_system_resolver() -> None:
    resolver = _SlowResolver(["127.0.0.1"])
    backend = DeadlineBackend(HostAddresses(lookup=resolver))
    started = time.monotonic()
    with deadline_scope(time.monotonic() + 0.3), pytest.raises(ConnectTimeout):
        backend.connect_tcp("slow.example", 9, timeout=20.0)
    assert time.monotonic() - started < 2.0
    resolver.release.set()


def test_every_waiter_gets_its_own_copy_of_a_failure() -> None:
    resolver = _Resolver({})
    addresses = HostAddresses(lookup=resolver)
    raised: list[BaseException] = []
    start = threading.Barrier(4)

    def ask() -> None:
        start.wait()
        try:
            addresses.addresses("gone.example", 443, timeout=5.0)
        except socket.gaierror as exc:
            raised.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(raised) == 4
    assert len({id(exc) for exc in raised}) == 4
    assert all("gone.example" in str(exc) for exc in raised)
