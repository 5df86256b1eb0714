"""Pages past their TTL are fetched again, and parsed again only when the index sent other bytes."""

from __future__ import annotations

import threading
import time

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd.deadline import deadline_scope
from lockd.errors import ResolutionTimeout
from lockd.index import IndexClient
from lockd.index.page_reuse import ParsedPages
from lockd.simple import ProjectPage


def test_the_same_bytes_fetched_again_give_the_page_already_parsed(fixture_index: WatchedIndex) -> None:
    name = canonicalize_name("lockd-fx-yanked")
    with IndexClient(timeout=5.0, page_ttl=0) as client:
        first = client.project_page(fixture_index.pypi_url, name)
        second = client.project_page(fixture_index.pypi_url, name)
        assert client.stats.pages == 2  # fetched twice: a TTL of 0 keeps nothing
    assert second is first


def test_a_changed_page_is_parsed_again(mutable_index: ControlledIndex) -> None:
    name = canonicalize_name("lockd-fx-plain")
    with IndexClient(timeout=5.0, page_ttl=0) as client:
        before = client.project_page(mutable_index.pypi_url, name)
        mutable_index.publish("lockd-fx-plain", "9.0")
        after = client.project_page(mutable_index.pypi_url, name)
    assert Version("9.0") in after.versions
    assert Version("9.0") not in before.versions


def test_only_the_same_body_content_type_and_final_url_reuse_a_parse() -> None:
    pages = ParsedPages(1024 * 1024)
    parsed: list[ProjectPage] = []

    def parse() -> ProjectPage:
        parsed.append(ProjectPage(name=canonicalize_name("p"), index_url="u", files=()))
        return parsed[-1]

    url, json = "https://i/simple/p/", "application/vnd.pypi.simple.v1+json"
    first = pages.page(url, b"body", json, url, parse, name="p")
    assert pages.page(url, b"body", json, url, parse, name="p") is first
    assert pages.page(url, b"other", json, url, parse, name="p") is parsed[1]
    assert pages.page(url, b"other", "text/html", url, parse, name="p") is parsed[2]
    assert pages.page(url, b"other", "text/html", url + "moved/", parse, name="p") is parsed[3]
    assert (
        pages.page("https://i/simple/q/", b"other", "text/html", url + "moved/", parse, name="q") is parsed[4]
    )
    assert len(parsed) == 5


def _page() -> ProjectPage:
    return ProjectPage(name=canonicalize_name("p"), index_url="u", files=())


def test_pages_are_parsed_one_at_a_time() -> None:
    pages = ParsedPages(1024 * 1024)
    first_inside, second_inside = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> ProjectPage:
        first_inside.set()
        # Long enough for the second thread to be waiting at the parse: it must not get in.
        overlapped = second_inside.wait(0.5)
        order.append(f"first out, overlapped={overlapped}")
        return _page()

    def second() -> ProjectPage:
        second_inside.set()
        order.append("second in")
        return _page()

    json = "application/vnd.pypi.simple.v1+json"
    one = threading.Thread(
        target=pages.page,
        args=("https://i/simple/a/", b"a", json, "https://i/simple/a/", first),
        kwargs={"name": "a"},
    )
    one.start()
    assert first_inside.wait(5.0)
    two = threading.Thread(
        target=pages.page,
        args=("https://i/simple/b/", b"b", json, "https://i/simple/b/", second),
        kwargs={"name": "b"},
    )
    two.start()
    one.join(5.0)
    two.join(5.0)
    assert order == ["first out, overlapped=False", "second in"]


def test_a_thread_waiting_to_parse_ends_at_its_deadline() -> None:
    pages = ParsedPages(1024 * 1024)
    inside, waiter_done = threading.Event(), threading.Event()

    def slow() -> ProjectPage:
        inside.set()
        assert waiter_done.wait(5.0)
        return _page()

    json = "application/vnd.pypi.simple.v1+json"
    holder = threading.Thread(
        target=pages.page,
        args=("https://i/simple/a/", b"a", json, "https://i/simple/a/", slow),
        kwargs={"name": "a"},
    )
    holder.start()
    assert inside.wait(5.0)
    started = time.monotonic()
    try:
        with deadline_scope(time.monotonic() + 0.2), pytest.raises(ResolutionTimeout):
            pages.page("https://i/simple/b/", b"b", json, "https://i/simple/b/", _page, name="b")
    finally:
        waiter_done.set()
        holder.join(5.0)
    assert time.monotonic() - started < 3.0
