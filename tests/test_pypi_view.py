"""The real-PyPI modules' shared view (tests/pypi_view.py) against an upstream that changes its
answer on every request: every client sees the first page, fetched once; an outage is not kept."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

import httpx

from tests.pypi_view import PEP691, PypiView, serve_view
from tests.support import QuietHandler, loopback_http


class _Moving:
    """An upstream index whose pages change with every request; `outages` requests answer 503."""

    def __init__(self, outages: int = 0) -> None:
        self.requests: list[tuple[str, str]] = []
        self.outages = outages
        self._lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        moving = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with moving._lock:
                    moving.requests.append((self.path, self.headers.get("Accept", "")))
                    serial = len(moving.requests)
                    down = moving.outages > 0
                    moving.outages -= down
                status, body = (503, b"down") if down else (200, f'{{"serial": {serial}}}'.encode())
                if self.path.startswith("/simple/missing/"):
                    status, body = 404, b"no such project"
                self.send_body(status, PEP691, body)

        return Handler


def test_every_client_gets_the_first_page_fetched_once() -> None:
    upstream = _Moving()
    with loopback_http(upstream.handler()) as address:
        view = PypiView(f"http://{address}/simple/")
        with serve_view(view) as url:
            with ThreadPoolExecutor(8) as pool:
                bodies = list(pool.map(lambda _: httpx.get(url + "grpcio/").content, range(16)))
            later = httpx.get(url + "grpcio/", headers={"Accept": "text/html"})
            other = httpx.get(url + "numpy/")
        view.close()
    assert set(bodies) == {b'{"serial": 1}'}
    assert later.content == b'{"serial": 1}' and later.headers["content-type"] == PEP691
    assert other.content == b'{"serial": 2}'
    assert upstream.requests == [("/simple/grpcio/", PEP691), ("/simple/numpy/", PEP691)]


def test_a_missing_project_is_kept_and_an_outage_is_not() -> None:
    upstream = _Moving(outages=1)
    with loopback_http(upstream.handler()) as address:
        view = PypiView(f"http://{address}/simple/")
        with serve_view(view) as url:
            first, second = httpx.get(url + "torch/"), httpx.get(url + "torch/")
            missing = [httpx.get(url + "missing/").status_code for _ in range(2)]
            elsewhere = httpx.get(url.removesuffix("simple/") + "packages/x.whl")
        view.close()
    assert (first.status_code, second.status_code, second.content) == (503, 200, b'{"serial": 2}')
    assert missing == [404, 404]
    assert elsewhere.status_code == 404
    assert [path for path, _ in upstream.requests] == ["/simple/torch/", "/simple/torch/", "/simple/missing/"]
