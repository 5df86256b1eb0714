"""One view of real PyPI that every tool in a test module reads: lockd, uv and pip see the same pages.

The real-PyPI modules compare lockd's pins with uv's. Each tool fetching its own pages leaves the
comparison at the mercy of the world between two fetches: a release landing, or the proxy here
answering one client's request from a staler copy than another's (CI once saw uv pick grpcio
1.85.3 while lockd, a moment before, was shown 1.85.4, twelve days after its upload). So both go
through this loopback index instead: the first request for a project's page fetches PyPI's PEP 691
JSON once, and every later request, from any tool, gets those same bytes. File URLs in the pages
stay absolute (files.pythonhosted.org): files are immutable by hash, so only pages need pinning.

`reachable_pypi_view()` yields the view's `/simple/` URL, or skips with the reason PyPI is not
reachable; conftest's module fixture `pypi_view` calls it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from lockd.index.single_flight import SingleFlight
from lockd.routing import DEFAULT_INDEX_URL
from tests.support import QuietHandler, loopback_http

__all__ = ["PEP691", "PypiView", "reachable_pypi_view", "serve_view"]

PEP691 = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True, slots=True)
class _Page:
    status: int
    content_type: str
    body: bytes


class PypiView:
    """Pages of `upstream` fetched once each and served the same to every client after that."""

    def __init__(self, upstream: str = DEFAULT_INDEX_URL) -> None:
        self.upstream = upstream
        self._client = httpx.Client(timeout=60.0, follow_redirects=True)
        self._pages: dict[str, _Page] = {}
        self._guard = threading.Lock()
        self._flight: SingleFlight[str, _Page] = SingleFlight()  # two tools asking at once: one fetch

    def page(self, project: str) -> _Page:
        return self._kept(project) or self._flight.run(project, lambda: self._fetch(project))

    def _kept(self, project: str) -> _Page | None:
        with self._guard:
            return self._pages.get(project)

    def _fetch(self, project: str) -> _Page:
        kept = self._kept(project)  # a flight that ended between `page`'s look and this one
        if kept is not None:
            return kept
        response = self._client.get(f"{self.upstream}{project}/", headers={"Accept": PEP691})
        page = _Page(response.status_code, response.headers.get("content-type", PEP691), response.content)
        if page.status in {200, 404}:  # an outage is not a view to keep
            with self._guard:
                self._pages[project] = page
        return page

    def close(self) -> None:
        self._client.close()


def _handler(view: PypiView) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "simple" or not parts[1]:
                self.send_body(404, "text/plain", b"only /simple/<project>/ pages are served\n")
                return
            try:
                page = view.page(parts[1])
            except httpx.HTTPError as exc:
                self.send_body(502, "text/plain", f"{type(exc).__name__}: {exc}\n".encode())
                return
            self.send_body(page.status, page.content_type, page.body)

    return Handler


@contextmanager
def serve_view(view: PypiView) -> Iterator[str]:
    """Serve `view` on a free loopback port; yields its `/simple/` URL."""
    with loopback_http(_handler(view)) as address:
        yield f"http://{address}/simple/"


def _unreachable_reason(upstream: str) -> str | None:
    try:
        response = httpx.get(upstream + "pip/", timeout=5.0, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"{upstream} is unreachable ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{upstream} answered {response.status_code}"
    return None


@contextmanager
def reachable_pypi_view(upstream: str = DEFAULT_INDEX_URL) -> Iterator[str]:
    """The `/simple/` URL of a fresh view of `upstream`; skips the caller when it is unreachable."""
    reason = _unreachable_reason(upstream)
    if reason is not None:
        pytest.skip(reason)
    view = PypiView(upstream)
    try:
        with serve_view(view) as url:
            yield url
    finally:
        view.close()
