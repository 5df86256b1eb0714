"""`lockd.index.addresses`: one system lookup per host a minute, never a cached failure, literals as they are."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from lockd.index.addresses import HostAddresses
from lockd.index.network import deadline_transport


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
        with httpx.Client(transport=deadline_transport(max_connections=4)) as client:
            assert client.get(f"http://localhost:{port}/").text == "ok"
        assert seen == [f"localhost:{port}"]
    finally:
        server.shutdown()
        server.server_close()
