"""`lockd.index.network`: sockets that end at the caller's deadline, whatever the server's pace."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from lockd.deadline import deadline_scope
from lockd.errors import IndexUnavailable, ResolutionTimeout
from lockd.index import IndexClient
from lockd.index.connections import ConnectionSlots
from lockd.index.fetcher import Fetcher
from lockd.index.network import DeadlineBackend, index_connections
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.index.wire import ReadTimeout
from tests.support import QuietHandler, fetched, loopback_http, loopback_https, slots_get, slots_read

_PAGE = b'{"meta": {"api-version": "1.1"}, "name": "drip", "files": []}'


class _Drip(BaseHTTPRequestHandler):
    """Answers a page one byte every 0.1 s (after `pause` seconds of silence, if set)."""

    protocol_version = "HTTP/1.1"
    pause = 0.0
    body = _PAGE

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.pause)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            for i in range(len(self.body)):
                self.wfile.write(self.body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Silent(_Drip):
    pause = 30.0


class _ShortDrip(_Drip):
    body = b"0123456789"


@pytest.fixture
def drip() -> Iterator[str]:
    with loopback_http(_Drip) as host:
        yield f"http://{host}/simple/"


def test_the_fetchers_connections_are_on_deadline_sockets() -> None:
    fetcher = Fetcher(ClientOptions(max_connections=4), FetchCounters())
    slots = fetcher._connections
    assert isinstance(slots._network_backend, DeadlineBackend)
    assert slots._max_connections == 4
    fetcher.close()


def test_a_drip_fed_body_ends_at_the_deadline_not_at_the_read_timeout(drip: str) -> None:
    with index_connections(max_connections=1) as slots:
        started = time.monotonic()
        with deadline_scope(started + 0.8), pytest.raises(ReadTimeout):
            slots_read(slots, drip + "drip/")
        elapsed = time.monotonic() - started
    assert 0.75 < elapsed < 1.6, f"{elapsed:.2f} s for a 0.8 s deadline"


def test_without_a_deadline_a_slow_body_is_read_whole() -> None:
    with loopback_http(_ShortDrip) as host, index_connections(max_connections=1) as slots:
        assert slots_read(slots, f"http://{host}/") == _ShortDrip.body


def test_the_client_reports_the_deadline_as_resolution_timeout(drip: str) -> None:
    with IndexClient(timeout=5.0) as client:
        started = time.monotonic()
        with deadline_scope(started + 0.8), pytest.raises(ResolutionTimeout) as raised:
            client.project_page(drip, canonicalize_name("drip"))
        elapsed = time.monotonic() - started
        assert raised.value.code == "resolution-timeout"
        assert drip + "drip/" in raised.value.message
        assert 0.75 < elapsed < 1.6
        # Past the deadline nothing is even asked.
        with deadline_scope(time.monotonic() - 1), pytest.raises(ResolutionTimeout, match="while asking"):
            client.project_page(drip, canonicalize_name("other"))


def test_a_silent_server_ends_at_the_deadline_or_at_the_timeout() -> None:
    with loopback_http(_Silent) as host, IndexClient(timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(IndexUnavailable, match="did not answer in time"):
            client.project_page(f"http://{host}/simple/", canonicalize_name("quiet"))
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        with IndexClient(timeout=30.0) as patient, deadline_scope(started + 0.5):
            with pytest.raises(ResolutionTimeout):
                patient.project_page(f"http://{host}/simple/", canonicalize_name("quiet"))
        assert time.monotonic() - started < 1.0


class _Big(QuietHandler):
    """Answers 512 KiB at once."""

    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * 2048

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def tls_loopback(tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """A TLS server on loopback with a self-signed certificate, and a client context trusting it."""
    with loopback_https(_Big, tmp_path) as (address, cert):
        yield f"https://{address}/", ssl.create_default_context(cafile=cert)


def test_a_tls_read_takes_every_record_already_received(tls_loopback: tuple[str, ssl.SSLContext]) -> None:
    # TLS hands over one 16 KiB record per recv; each chunk then costs a pass through h11,
    # httpcore and the body limits. A read takes what is already there, up to 64 KiB.
    url, context = tls_loopback
    slots = ConnectionSlots(
        tls_context=lambda: context,
        max_connections=1,
        keepalive_expiry=5.0,
        retries=0,
        network_backend=DeadlineBackend(),
    )
    with slots:
        response = slots_get(slots, url)
        time.sleep(0.3)  # the body is on its way: the socket holds many records
        chunks = list(response.iter_stream())
        response.close()
    assert b"".join(chunks) == _Big.body
    assert max(len(chunk) for chunk in chunks) > 16384
    assert len(chunks) <= len(_Big.body) // 32768


def test_https_verifies_with_certifi_or_the_operators_ssl_cert_file(
    tls_loopback: tuple[str, ssl.SSLContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _context = tls_loopback
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        with pytest.raises(IndexUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            fetched(fetcher, url)  # a self-signed certificate is no public CA's
    finally:
        fetcher.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        assert fetched(fetcher, url) == (200, url, _Big.body)
    finally:
        fetcher.close()


def test_https_checks_the_certificate_is_for_the_host_asked(
    tls_loopback: tuple[str, ssl.SSLContext], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The certificate is for 127.0.0.1 alone, and trusted: asked as localhost, the same server
    # is refused, since the name sent (SNI) and checked is the URL's host, not the address.
    url, _context = tls_loopback
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        assert fetched(fetcher, url)[0] == 200
        with pytest.raises(IndexUnavailable, match=r"Hostname mismatch.*'localhost'"):
            fetched(fetcher, url.replace("127.0.0.1", "localhost"))
    finally:
        fetcher.close()
