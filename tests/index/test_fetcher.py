"""`lockd.index.fetcher`: requests over lockd's own connections; redirects as browsers follow them, no cookies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from lockd.errors import IndexUnavailable
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from tests.support import QuietHandler, fetched, loopback_http


class _Hops(QuietHandler):
    """Redirects by path; notes each path asked for and the Cookie header it came with."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None]]] = []
    moves: ClassVar[dict[str, tuple[int, str]]] = {
        "/simple/Demo/": (301, "/simple/demo/"),  # absolute path
        "/simple/a/": (302, "../b/"),  # relative to the URL that answered
        "/simple/b/": (307, "//{host}/simple/demo/"),  # scheme-relative
        "/loop/": (308, "/loop/"),
        "/ftp/": (302, "ftp://{host}/x"),
    }

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Cookie")))
        move = self.moves.get(self.path)
        if move is not None:
            status, location = move
            self.send_response(status)
            self.send_header("Location", location.format(host=self.headers["Host"]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"page"
        self.send_response(200)
        self.send_header("Set-Cookie", "tracker=1; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hops() -> Iterator[tuple[str, Fetcher]]:
    _Hops.seen.clear()
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    with loopback_http(_Hops) as host:
        try:
            yield f"http://{host}", fetcher
        finally:
            fetcher.close()


def _get(fetcher: Fetcher, url: str) -> tuple[int, str, bytes]:
    return fetched(fetcher, url)


@pytest.mark.parametrize("start", ["/simple/Demo/", "/simple/a/"])
def test_redirects_are_followed_to_the_url_that_answers(hops: tuple[str, Fetcher], start: str) -> None:
    base, fetcher = hops
    assert _get(fetcher, base + start) == (200, base + "/simple/demo/", b"page")


def test_a_redirect_loop_or_to_another_scheme_is_an_unavailable_index(hops: tuple[str, Fetcher]) -> None:
    base, fetcher = hops
    with pytest.raises(IndexUnavailable, match="redirects"):
        _get(fetcher, base + "/loop/")
    assert len(_Hops.seen) == 21  # the first request and 20 redirects, as httpx and requests allow
    with pytest.raises(IndexUnavailable, match="not ftp scheme"):
        _get(fetcher, base + "/ftp/")


def test_an_index_cookie_is_never_sent_back(hops: tuple[str, Fetcher]) -> None:
    # Nothing an index sends is kept: a cookie would let it follow one server's resolutions.
    base, fetcher = hops
    for _ in range(2):
        assert _get(fetcher, base + "/simple/demo/")[0] == 200
    assert _Hops.seen == [("/simple/demo/", None)] * 2


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "data:text/plain,hi", "//nohost/x"]
)
def test_a_link_of_another_scheme_is_refused_not_a_crash(url: str) -> None:
    # Links come from index pages; httpcore met these with a KeyError.
    fetcher = Fetcher(ClientOptions(timeout=5.0), FetchCounters())
    try:
        with pytest.raises(IndexUnavailable, match="http and https only"):
            _get(fetcher, url)
    finally:
        fetcher.close()
