"""A server's pages fetched by its page child as well as parsed: the same pages, counts and errors.

A client with no page store (the server's) has its child fetch each page, so the page's bytes,
TLS and HTTP parsing stay off the resolution's GIL. What the tests hold it to: the pages are
those fetched and parsed here, field by field; the client counts the same requests, pages and
bytes; a body the client parsed last time comes back unparsed and its parse is reused, and is
fetched here instead while the child has its share of fetches (`pages.SHARED_FROM`); a body
below the child's threshold comes back as it is and is parsed here; anything but a page (404, a
page that does not parse, a child that cannot fetch) is met again here with the client's own
error; and a page of an index with a credential is never fetched by the child, which never
holds one. Real children, the fixture index over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from packaging.utils import NormalizedName, canonicalize_name

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd.deadline import deadline_scope
from lockd.errors import IndexUnavailable, ResolutionTimeout, UnknownProject
from lockd.index import IndexClient, early_child, page_worker, pages, split_credentials
from lockd.index.options import ClientOptions
from lockd.index.page_worker import FetchedPage, FetchLimits, PageFetch, PageWorker
from lockd.simple import ProjectPage
from tests.index.test_page_worker import _same
from tests.support import child_pids

_NAMES = ("lockd-fx-plain", "lockd-fx-yanked", "lockd-fx-pyreq")


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[PageFetch, FetchedPage | None]]:
    """Every page a client asked its child to fetch, with the child's answer."""
    seen: list[tuple[PageFetch, FetchedPage | None]] = []
    fetch = PageWorker.fetch

    def noted(self: PageWorker, job: PageFetch) -> FetchedPage | None:
        seen.append((job, None))  # noted before it is asked: a fetch may raise
        at = len(seen) - 1
        answer = fetch(self, job)
        seen[at] = (job, answer)
        return answer

    monkeypatch.setattr(PageWorker, "fetch", noted)
    return seen


def _client(**options: object) -> IndexClient:
    return IndexClient(ClientOptions(**{"timeout": 10.0, **options}))  # type: ignore[arg-type]


def _pages(client: IndexClient, index_url: str, names: tuple[str, ...] = _NAMES) -> list[ProjectPage]:
    return [client.project_page(index_url, canonicalize_name(name)) for name in names]


def test_the_child_fetches_the_pages_and_they_are_the_pages_fetched_here(
    fixture_index: WatchedIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    with _client(page_worker_from=None) as here:
        expected = _pages(here, fixture_index.pypi_url)
        counted_here = here.stats
    assert not asked
    with _client(page_worker_from=1) as client:
        found = _pages(client, fixture_index.pypi_url)
        counted = client.stats
    for page, want in zip(found, expected, strict=True):
        _same(page, want)
    assert [job.name for job, _ in asked] == list(_NAMES)
    assert all(answer is not None and answer.form is not None for _, answer in asked)
    assert (counted.requests, counted.pages, counted.bytes_fetched) == (
        counted_here.requests,
        counted_here.pages,
        counted_here.bytes_fetched,
    )


def test_a_body_below_the_childs_threshold_comes_back_as_it_is_and_is_parsed_here(
    fixture_index: WatchedIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    with _client(page_worker_from=None) as here:
        expected = _pages(here, fixture_index.pypi_url)
    with _client(page_worker_from=10 * 1024 * 1024) as client:
        found = _pages(client, fixture_index.pypi_url)
    for page, want in zip(found, expected, strict=True):
        _same(page, want)
    assert asked and all(answer is not None and answer.body is not None for _, answer in asked)
    assert all(answer is not None and answer.form is None for _, answer in asked)


def test_a_body_fetched_again_unchanged_comes_back_unparsed_and_its_last_parse_is_reused(
    fixture_index: WatchedIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    name = (_NAMES[0],)
    with _client(page_worker_from=1, page_ttl=0.0) as client:
        (first,) = _pages(client, fixture_index.pypi_url, name)
        (again,) = _pages(client, fixture_index.pypi_url, name)
        assert client.stats.pages == 2  # fetched twice: a TTL of 0 keeps no page
    assert again is first
    (job1, answer1), (job2, answer2) = asked
    assert job1.known is None and answer1 is not None and answer1.form is not None
    assert answer2 is not None and job2.known == answer2.sha256 == answer1.sha256
    assert answer2.form is None and answer2.body is None


def test_a_page_fetched_again_while_the_child_has_its_share_is_fetched_here_and_its_parse_reused(
    mutable_index: ControlledIndex,
    asked: list[tuple[PageFetch, FetchedPage | None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With its share of fetches under way, the child is asked no page this process parsed before:
    that one is fetched here, and its last parse stands. A page never parsed goes to the child still."""
    monkeypatch.setattr(pages, "SHARED_FROM", 1)  # one fetch under way is the child's share
    slow, again, new = (canonicalize_name(name) for name in _NAMES)
    with _client(page_worker_from=1, page_ttl=0.0) as client:
        first = client.project_page(mutable_index.pypi_url, again)
        client.project_page(mutable_index.pypi_url, slow)
        mutable_index.set_fault("hang", seconds=1.5, path_prefix=f"/simple/{slow}/")
        held = threading.Thread(target=client.project_page, args=(mutable_index.pypi_url, slow))
        held.start()
        deadline = time.monotonic() + 10
        while len(asked) < 3 and time.monotonic() < deadline:  # the child has the slow page
            time.sleep(0.01)
        assert len(asked) == 3 and held.is_alive()
        refetched = client.project_page(mutable_index.pypi_url, again)
        client.project_page(mutable_index.pypi_url, new)
        assert held.is_alive()  # all of the above while the child held the slow page
        held.join()
        counted = client.stats
    assert refetched is first  # fetched here, unchanged: its last parse
    assert [job.name for job, _ in asked] == [again, slow, slow, new]
    assert asked[3][0].known is None and asked[3][1] is not None and asked[3][1].form is not None
    assert counted.pages == 5


def test_an_unknown_project_or_a_page_that_does_not_parse_is_met_here_with_its_own_error(
    mutable_index: ControlledIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    unknown = NormalizedName("lockd-fx-no-such-project")
    with _client(page_worker_from=1) as client, pytest.raises(UnknownProject, match="is not on the index"):
        client.project_page(mutable_index.pypi_url, unknown)
    assert [answer for _, answer in asked] == [None]
    mutable_index.set_fault("garbage", path_prefix="/simple/")
    errors = []
    for worker_from in (None, 1):
        with _client(page_worker_from=worker_from) as client, pytest.raises(IndexUnavailable) as raised:
            client.project_page(mutable_index.pypi_url, canonicalize_name(_NAMES[0]))
        errors.append((raised.value.message, raised.value.context))
    assert errors[0] == errors[1]
    assert [answer for _, answer in asked] == [None, None]


def test_a_page_of_an_index_with_a_credential_is_fetched_here_never_by_the_child(
    mutable_index: ControlledIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    mutable_index.require_auth("reader", "s3cret")
    host = mutable_index.pypi_url.split("//", 1)[1]
    _, credentials = split_credentials(f"http://reader:s3cret@{host}")
    with _client(page_worker_from=1, credentials=credentials) as client:
        pages = _pages(client, mutable_index.pypi_url)
    assert all(page.files for page in pages)
    assert not asked  # the child holds no credential and was never sent this index's pages
    mutable_index.require_auth(None)
    _, elsewhere = split_credentials("https://reader:s3cret@private.example/simple/")
    with _client(page_worker_from=1, credentials=elsewhere) as client:
        _pages(client, mutable_index.pypi_url)
    assert [job.name for job, answer in asked if answer is not None] == list(_NAMES)


def test_a_child_started_without_the_http_stack_refuses_a_fetch_and_the_caller_fetches() -> None:
    worker = PageWorker(from_bytes=1, max_form_bytes=1 << 20, fetches=False)
    limits = FetchLimits(
        timeout=5.0, max_connections=4, max_page_bytes=1 << 20, max_compression_ratio=200, user_agent="t"
    )
    job = PageFetch(
        url="http://127.0.0.1:9/simple/x/", name="x", max_files=10, known=None, parse_from=1, limits=limits
    )
    try:
        assert worker.fetch(job) is None
    finally:
        worker.close()


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    before = child_pids()
    yield
    deadline = time.monotonic() + 5.0
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_pids() - before  # every client ended its child


def test_a_child_that_dies_with_the_page_leaves_it_to_the_caller(
    fixture_index: WatchedIndex,
    monkeypatch: pytest.MonkeyPatch,
    asked: list[tuple[PageFetch, FetchedPage | None]],
) -> None:
    # A child that reads a little of its first job, then exits: the page is fetched here.
    _fetched_here(monkeypatch, "import sys; sys.stdin.buffer.read(8); sys.exit(3)", fixture_index.pypi_url)
    assert [answer for _, answer in asked] == [None]


def _fetched_here(
    monkeypatch: pytest.MonkeyPatch, child: str, index_url: str, **options: object
) -> tuple[float, bool]:
    """The first page read through a client whose child runs `child` (`python -c`), checked against
    the page fetched with no child; the seconds it took, and whether the child runs after it."""
    monkeypatch.setattr(early_child, "_PAGE_CHILD", child)
    with _client(page_worker_from=None) as here:
        expected = _pages(here, index_url, _NAMES[:1])
    with _client(page_worker_from=1, **options) as client:
        started = time.monotonic()
        found = _pages(client, index_url, _NAMES[:1])
        seconds = time.monotonic() - started
        running = client.page_worker is not None and client.page_worker.started
    _same(found[0], expected[0])
    return seconds, running


def test_a_page_still_coming_at_the_deadline_ends_the_resolution_in_time(
    mutable_index: ControlledIndex, asked: list[tuple[PageFetch, FetchedPage | None]]
) -> None:
    mutable_index.set_fault("hang", seconds=5.0, path_prefix="/simple/")
    with _client(page_worker_from=1) as client:
        assert client.page_worker is not None
        started = time.monotonic()
        with deadline_scope(started + 0.5), pytest.raises(ResolutionTimeout, match="asking"):
            client.project_page(mutable_index.pypi_url, canonicalize_name(_NAMES[0]))
        assert time.monotonic() - started < 2.0
        assert client.page_worker.started  # the child answered "late" itself: it was not killed
    assert [answer for _, answer in asked] == [None]


def test_a_child_silent_on_a_fetch_without_a_deadline_is_ended_and_the_page_fetched_here(
    fixture_index: WatchedIndex,
    monkeypatch: pytest.MonkeyPatch,
    asked: list[tuple[PageFetch, FetchedPage | None]],
) -> None:
    # The hang a test once met: a fetch job the child never answered, and no deadline to end the
    # wait. A child that reads its jobs and answers none is ended after its silence bound.
    monkeypatch.setattr(page_worker, "MIN_SILENCE", 0.5)
    seconds, running = _fetched_here(
        monkeypatch, "import sys; sys.stdin.buffer.read()", fixture_index.pypi_url, timeout=0.2
    )
    assert 0.5 <= seconds < 5.0
    assert not running
    assert [answer for _, answer in asked] == [None]
