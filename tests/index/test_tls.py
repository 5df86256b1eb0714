"""`lockd.index.tls`: the CA bundle read ahead of the first https request, never for another environment."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockd.config import Settings
from lockd.index import tls
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.service import Service
from tests.support import ROOT, QuietHandler, fetched, loopback_https


class _Page(QuietHandler):
    body = b'{"meta": {"api-version": "1.1"}, "name": "p", "files": []}'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def https_index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https index page on loopback with a self-signed certificate, and that certificate's file."""
    with loopback_https(_Page, tmp_path) as (address, cert):
        yield f"https://{address}/simple/p/", cert


@pytest.fixture
def built_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ssl.SSLContext | None]]]:
    """Each context `tls` builds, with the name of the thread that built it (None: it raised)."""
    built: list[tuple[str, ssl.SSLContext | None]] = []
    build = tls._build

    def recorded(source: tuple[str, str]) -> ssl.SSLContext:
        try:
            context = build(source)
        except Exception:
            built.append((threading.current_thread().name, None))
            raise
        built.append((threading.current_thread().name, context))
        return context

    monkeypatch.setattr(tls, "_build", recorded)
    monkeypatch.setattr(tls, "_prepared", None)
    yield built
    monkeypatch.setattr(tls, "_prepared", None)  # a test's unused context is not the next test's


def test_the_prepared_context_is_built_on_its_own_thread_and_taken_once(
    https_index: tuple[str, Path],
    built_on: list[tuple[str, ssl.SSLContext | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, cert = https_index
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    tls.prepare_tls_context()
    tls.prepare_tls_context()  # once under way, asking again starts nothing
    first = tls.tls_context()
    assert [name for name, _ in built_on] == ["lockd-tls-context"]
    assert built_on[0][1] is first
    second = tls.tls_context()  # the next client builds its own, as every client did
    assert second is not first
    assert [name for name, _ in built_on] == ["lockd-tls-context", threading.current_thread().name]
    # The prepared context verifies as one built on the spot does: this index's certificate.
    tls.prepare_tls_context()
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        assert fetched(fetcher, url) == (200, url, _Page.body)
    finally:
        fetcher.close()
    assert [name for name, _ in built_on][-1] == "lockd-tls-context"


def test_a_context_prepared_for_another_ca_is_never_used(
    https_index: tuple[str, Path],
    built_on: list[tuple[str, ssl.SSLContext | None]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, cert = https_index
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    tls.prepare_tls_context()  # certifi's bundle: this index's certificate is no public CA's
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the operator's CA, set after
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        # certifi's context would refuse this certificate: the one used was built for SSL_CERT_FILE.
        assert fetched(fetcher, url) == (200, url, _Page.body)
    finally:
        fetcher.close()
    for thread in threading.enumerate():
        if thread.name == "lockd-tls-context":
            thread.join(10)
    assert sorted(name for name, _ in built_on) == sorted(
        ["lockd-tls-context", threading.current_thread().name]
    )


def test_a_ca_file_that_cannot_be_read_fails_where_the_context_is_taken(
    built_on: list[tuple[str, ssl.SSLContext | None]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    tls.prepare_tls_context()  # fails on its thread, silently
    with pytest.raises(FileNotFoundError):
        tls.tls_context()  # and again here, with the caller's traceback
    assert [(name, context) for name, context in built_on] == [
        ("lockd-tls-context", None),
        (threading.current_thread().name, None),
    ]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_server_reads_the_ca_bundle_as_it_opens_only_for_an_https_index(
    scheme: str, database_url: str, built_on: list[tuple[str, ssl.SSLContext | None]]
) -> None:
    # Read while the app starts, so its first cold resolution does not (20 ms of CPU). `lockd
    # lock` does not: its first https connection reads the bundle on a fetch thread while the
    # resolver loads, and a run its cache answers needs none (reading it ahead cost the warm
    # 25-pin run 20 ms of a core its page child was starting on).
    service = Service.open(Settings(database_url=database_url, index_url=f"{scheme}://127.0.0.1:9/simple/"))
    try:
        for thread in threading.enumerate():
            if thread.name == "lockd-tls-context":
                thread.join(10)
        if scheme == "https":
            assert [name for name, _ in built_on] == ["lockd-tls-context"]
            assert tls._prepared is not None  # taken by the service's first https connection
        else:
            assert built_on == []  # a plain-http index never loads the CA bundle
    finally:
        service.close()


def test_a_fetching_page_child_reads_the_ca_bundle_as_it_starts() -> None:
    code = (
        "import sys\n"
        "from lockd.index.page_child import main\n"
        "from lockd.index import tls\n"
        "main()\n"  # stdin is empty: it starts, then ends
        "print(tls._prepared is not None)\n"
    )
    for flags, prepared in (([], "False"), (["--fetches"], "True")):
        done = subprocess.run(
            [sys.executable, "-c", code, *flags],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=ROOT,
            check=True,
        )
        assert done.stdout.decode().split() == [prepared], done.stderr
