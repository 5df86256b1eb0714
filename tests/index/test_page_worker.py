"""Big pages parsed by a child process: the same pages, the same errors, and a parse here whenever the child fails.

Every test runs a real child (`python -c`, this interpreter); `from_bytes=1` sends every page
to it. The pages are PyPI-shaped JSON and PEP 503 HTML, built here or served by the fixture index.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from fixtures.served_index import WatchedIndex
from lockd.deadline import deadline_scope
from lockd.errors import IndexUnavailable, LockdError, ResolutionTimeout, ResponseTooLarge
from lockd.index import IndexClient, early_child, page_worker
from lockd.index.options import ClientOptions
from lockd.index.page_reuse import STORED_WORKER_FROM, ParsedPages
from lockd.index.page_worker import PageWorker
from lockd.simple import ProjectPage
from lockd.simple.page_parse import parse_page
from tests.support import StartLockd, child_pids

_JSON = "application/vnd.pypi.simple.v1+json"
_HTML = "text/html"
_URL = "https://pypi.example/simple/demo-pkg/"
_MAX_FILES = 1000


def _json_page(versions: int = 40) -> bytes:
    entries: list[dict[str, object]] = []
    for minor in range(versions):
        for tag in ("cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp311-cp311-win_amd64"):
            filename = f"demo_pkg-1.{minor}-{tag}.whl"
            entries.append(
                {
                    "filename": filename,
                    "url": f"https://files.example/packages/ab/{filename}",
                    "hashes": {"sha256": f"{minor:064x}"},
                    "requires-python": ">=3.9" if minor % 2 else ">=3.8, <4",
                    "size": 1024 + minor,
                    "upload-time": "2024-10-18T15:21:02.123456Z",
                    "yanked": minor == 3 and "broken",
                    "core-metadata": {"sha256": "cd" * 32},
                }
            )
        entries.append(
            {"filename": f"demo_pkg-1.{minor}.tar.gz", "url": f"../../p/demo_pkg-1.{minor}.tar.gz"}
        )
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": entries}).encode()


def _html_page() -> bytes:
    links = "".join(
        f'<a href="/whl/demo_pkg-1.{m}-py3-none-any.whl#sha256={m:064x}" data-requires-python="&gt;=3.9">'
        f"demo_pkg-1.{m}-py3-none-any.whl</a>\n"
        for m in range(30)
    )
    return f"<!DOCTYPE html><html><body>{links}</body></html>".encode()


def _here(body: bytes, content_type: str, max_files: int = _MAX_FILES) -> ProjectPage:
    return parse_page(body, content_type, _URL, canonicalize_name("demo-pkg"), _URL, max_files=max_files)


def _pages(worker: PageWorker, *, max_files: int = _MAX_FILES) -> ParsedPages:
    return ParsedPages(64 * 1024 * 1024, max_files=max_files, worker=worker)


def _read(
    pages: ParsedPages, body: bytes, content_type: str = _JSON, *, parsed_here: list[str] | None = None
) -> ProjectPage:
    def parse() -> ProjectPage:
        if parsed_here is not None:
            parsed_here.append(content_type)
        return _here(body, content_type)

    return pages.page(_URL, body, content_type, _URL, parse, name="demo-pkg")


def _same(found: ProjectPage, expected: ProjectPage) -> None:
    assert found == expected
    assert found.foreign_versions == expected.foreign_versions
    # `DistFile` equality leaves out the listing page and the details worked out on first use.
    assert [(f.index_url, f.url, f.upload_time, f.metadata_url, f.metadata_sha256) for f in found.files] == [
        (f.index_url, f.url, f.upload_time, f.metadata_url, f.metadata_sha256) for f in expected.files
    ]


@pytest.fixture
def worker() -> Iterator[PageWorker]:
    made = PageWorker(from_bytes=1, max_form_bytes=64 * 1024 * 1024)
    yield made
    made.close()


@contextmanager
def _impostor(monkeypatch: pytest.MonkeyPatch, code: str) -> Iterator[PageWorker]:
    """A worker whose child runs `code` (`python -c`) instead of the page worker."""
    monkeypatch.setattr(early_child, "_PAGE_CHILD", code)
    worker = PageWorker(from_bytes=1, max_form_bytes=1024 * 1024)
    try:
        yield worker
    finally:
        worker.close()


def _parsed_here(worker: PageWorker, versions: int = 40) -> list[str]:
    """Reads a page through `worker`; what was parsed in this process (the page is checked either way)."""
    parsed_here: list[str] = []
    body = _json_page(versions=versions)
    _same(_read(_pages(worker), body, parsed_here=parsed_here), _here(body, _JSON))
    return parsed_here


@pytest.mark.parametrize(("content_type", "body"), [(_JSON, _json_page()), (_HTML, _html_page())])
def test_a_page_parsed_by_the_child_is_the_page_parsed_here(
    worker: PageWorker, content_type: str, body: bytes
) -> None:
    parsed_here: list[str] = []
    page = _read(_pages(worker), body, content_type, parsed_here=parsed_here)
    assert parsed_here == []  # the child's form built it
    assert worker.started
    _same(page, _here(body, content_type))
    assert page.files[0].yanked is None and any(f.yanked == "broken" for f in page.files) == (
        content_type == _JSON
    )


def test_a_small_page_is_parsed_here_and_starts_no_child() -> None:
    small = PageWorker(from_bytes=10 * 1024 * 1024, max_form_bytes=64 * 1024 * 1024)
    parsed_here: list[str] = []
    before = child_pids()
    try:
        _read(_pages(small), _json_page(), parsed_here=parsed_here)
        assert parsed_here == [_JSON]
        assert not small.started
        assert child_pids() <= before
    finally:
        small.close()


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b'{"meta": {"api-version": "1.1"}, "files": [', _JSON, IndexUnavailable),
        (b"<html>", "text/plain", IndexUnavailable),
        (_json_page(versions=400), _JSON, ResponseTooLarge),  # 1,200 files, over the limit of 1,000
    ],
)
def test_a_page_the_child_cannot_parse_raises_the_error_a_parse_here_raises(
    worker: PageWorker, body: bytes, content_type: str, error: type[LockdError]
) -> None:
    with pytest.raises(error) as here:
        _here(body, content_type)
    parsed_here: list[str] = []
    with pytest.raises(error) as through:
        _read(_pages(worker), body, content_type, parsed_here=parsed_here)
    assert parsed_here == [content_type]  # the child said no; the caller parsed it to say why
    assert str(through.value) == str(here.value)
    assert through.value.context == here.value.context
    assert worker.started  # and the child is still there for the next page
    _same(_read(_pages(worker), _json_page()), _here(_json_page(), _JSON))


def test_a_child_that_dies_is_replaced_for_the_next_page(worker: PageWorker) -> None:
    pages = _pages(worker)
    _read(pages, _json_page(versions=5))
    child = worker._child  # the process is what this test kills
    assert child is not None
    child._process.kill()
    deadline = time.monotonic() + 5.0
    while child.alive and time.monotonic() < deadline:  # its answer reader sees the pipe close
        time.sleep(0.01)
    assert not child.alive
    parsed_here: list[str] = []
    body = _json_page(versions=7)
    _same(_read(pages, body, parsed_here=parsed_here), _here(body, _JSON))
    assert parsed_here == []  # a new child's form
    assert worker._child is not child


def test_a_child_that_dies_with_the_page_leaves_it_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    with _impostor(monkeypatch, "import sys; sys.stdin.buffer.read(20); sys.exit(3)") as worker:
        for versions in (5, 6):  # the second page: a second child, which dies too
            assert _parsed_here(worker, versions) == [_JSON]


def test_an_answer_outside_the_protocol_ends_the_child_and_the_caller_parses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A child that answers a form bigger than the bound, then junk.
    liar = (
        "import sys, struct; sys.stdin.buffer.read(20); "
        "sys.stdout.buffer.write(struct.pack('<QBQ', 0, 0, 1 << 40) + b'x' * 100); sys.stdout.flush(); "
        "sys.stdin.buffer.read()"
    )
    with _impostor(monkeypatch, liar) as worker:
        assert _parsed_here(worker) == [_JSON]
        assert not worker.started


def test_a_form_that_is_not_the_pages_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A child that answers a well-framed form for another source: it must not stand for this page.
    forger = (
        "import sys, struct, json\n"
        "from lockd.simple.page_form import encode_page\n"
        "from lockd.simple import ProjectPage\n"
        "head = sys.stdin.buffer.read(20)\n"
        "job, h, b = struct.unpack('<QIQ', head)\n"
        "sys.stdin.buffer.read(h + b)\n"
        "form = encode_page(ProjectPage(name='demo-pkg', index_url='https://evil/', files=()), 'other')\n"
        "sys.stdout.buffer.write(struct.pack('<QBQ', job, 0, len(form)) + form); sys.stdout.flush()\n"
        "sys.stdin.buffer.read()\n"
    )
    with _impostor(monkeypatch, forger) as worker:
        assert _parsed_here(worker) == [_JSON]


def test_without_a_process_to_start_pages_are_parsed_here_and_no_start_is_retried_at_once(
    monkeypatch: pytest.MonkeyPatch, worker: PageWorker
) -> None:
    starts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        starts.append(args)
        raise BlockingIOError(11, "Resource temporarily unavailable")  # EAGAIN: a process limit

    monkeypatch.setattr(subprocess, "Popen", refuse)
    pages = _pages(worker)
    for versions in (5, 6, 7):
        parsed_here: list[str] = []
        body = _json_page(versions=versions)
        _same(_read(pages, body, parsed_here=parsed_here), _here(body, _JSON))
        assert parsed_here == [_JSON]
    assert len(starts) == 1


def test_a_child_silent_past_the_deadline_is_killed_and_the_caller_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _impostor(monkeypatch, "import time; time.sleep(120)") as worker:
        started = time.monotonic()
        with deadline_scope(time.monotonic() + 0.3), pytest.raises(ResolutionTimeout) as raised:
            _read(_pages(worker), _json_page())
        assert time.monotonic() - started < 10.0
        assert "parsing" in str(raised.value) or "waiting to parse" in str(raised.value)
        assert not worker.started  # killed: the next page gets another child


def test_a_child_silent_too_long_without_a_deadline_is_ended_and_the_page_parsed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It reads every job and answers none: with no deadline, only its silence can end the wait.
    monkeypatch.setattr(early_child, "_PAGE_CHILD", "import sys; sys.stdin.buffer.read()")
    worker = PageWorker(from_bytes=1, max_form_bytes=1024 * 1024, silent_after=0.5)
    try:
        parsed_here: list[str] = []
        started = time.monotonic()
        body = _json_page()
        _same(_read(_pages(worker), body, parsed_here=parsed_here), _here(body, _JSON))
        assert 0.5 <= time.monotonic() - started < 5.0
        assert parsed_here == [_JSON]
        assert not worker.started  # ended: the next page gets another child
    finally:
        worker.close()


def test_a_child_idle_since_its_last_answer_is_not_silent_when_asked_again(
    worker: PageWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Silence counts from the child's last answer or from the ask, whichever is later: a child
    # that answered long ago, idle since, is not stuck when a page then takes it a while.
    monkeypatch.setattr(page_worker, "_LOOK_EVERY", 0.005)  # looked at while it parses
    pages = _pages(worker)
    _read(pages, _json_page(versions=3))  # the child is up and has answered
    child = worker._running()
    assert child is not None
    child._heard -= 3600.0  # its last answer, an hour ago
    child._silent_after = 0.5
    parsed_here: list[str] = []
    _same(
        _read(pages, _json_page(versions=300), parsed_here=parsed_here),
        _here(_json_page(versions=300), _JSON),
    )
    assert parsed_here == []  # the child's form was used
    assert worker.started


def test_the_child_honours_the_deadline_it_is_given(worker: PageWorker) -> None:
    pages = _pages(worker)
    _read(pages, _json_page(versions=3))  # the child is up
    with deadline_scope(time.monotonic() - 1.0), pytest.raises(ResolutionTimeout):
        _read(pages, _json_page(versions=300))
    assert worker.started  # it answered "late" itself; it was not killed


def test_a_client_sends_big_pages_to_its_child_and_ends_it_when_closed(fixture_index: WatchedIndex) -> None:
    names = [canonicalize_name(n) for n in ("lockd-fx-plain", "lockd-fx-yanked", "lockd-fx-pyreq")]
    with IndexClient(ClientOptions(timeout=10.0, page_worker_from=None)) as here:
        expected = [here.project_page(fixture_index.pypi_url, name) for name in names]
    before = child_pids()
    client = IndexClient(ClientOptions(timeout=10.0, page_worker_from=1))
    with client:
        found = [client.project_page(fixture_index.pypi_url, name) for name in names]
        assert client.page_worker is not None and client.page_worker.started
        # A client made from it (a service's fresh client) shares the child and does not end it.
        shared = IndexClient(
            ClientOptions(timeout=10.0, page_worker_from=1),
            workers=client.workers,
            page_worker=client.page_worker,
        )
        with shared:
            again = shared.project_page(fixture_index.pypi_url, names[0])
        assert client.page_worker.started
        assert len(child_pids() - before) == 1
    for page, want in zip([*found, again], [*expected, expected[0]], strict=True):
        _same(page, want)
    assert not client.page_worker.started
    deadline = time.monotonic() + 5.0
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_pids() - before  # the child has ended


def test_a_client_configured_without_a_worker_has_none() -> None:
    with IndexClient(ClientOptions(page_worker_from=None)) as client:
        assert client.page_worker is None


def test_a_client_can_start_its_child_before_any_page() -> None:
    before = child_pids()
    with IndexClient(ClientOptions(timeout=10.0, page_worker_from=1)) as client:
        client.start_page_worker()  # what a serving worker does at start
        deadline = time.monotonic() + 5.0
        while not (client.page_worker is not None and client.page_worker.started):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert len(child_pids() - before) == 1
    with IndexClient(ClientOptions(page_worker_from=None)) as client:
        client.start_page_worker()  # configured off: nothing to start
        assert client.page_worker is None


def _page_children_of(pid: int) -> list[int]:
    """Page-worker processes anywhere below `pid` (Linux /proc)."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    for child, command in commands.items():
        if b"lockd.index.page_child" not in command:
            continue
        ancestor = parents.get(child, 0)
        while ancestor > 1 and ancestor != pid:
            ancestor = parents.get(ancestor, 0)
        if ancestor == pid:
            found.append(child)
    return found


@pytest.mark.parametrize(("setting", "children"), [("131072", 1), ("0", 0)])
def test_a_serving_worker_starts_its_page_child_at_start_unless_configured_off(
    start_lockd: StartLockd, tmp_path: Path, setting: str, children: int
) -> None:
    server = start_lockd(f"sqlite:///{tmp_path / 'lockd.db'}", tokens=False, LOCKD_PAGE_WORKER_FROM=setting)
    assert server.process is not None
    pid = server.process.pid
    deadline = time.monotonic() + 10.0
    while len(_page_children_of(pid)) < children and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and no more than that
    started = _page_children_of(pid)
    assert len(started) == children
    server.stop()
    deadline = time.monotonic() + 10.0
    while [p for p in started if _running(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in started if _running(p)]  # the child ends with its server


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_cli_run_starts_its_child_when_its_page_store_misses_and_not_when_it_answers(
    fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    from lockd.cli.user_cache import open_user_cache  # noqa: PLC0415  # the CLI's page store

    name = canonicalize_name("lockd-fx-plain")
    big = 10 * 1024 * 1024  # the fixture's pages are small: only the early start can start a child
    for expect_child in (True, False):  # cold (the store misses), then warm (it answers)
        cache = open_user_cache(tmp_path, page_ttl=600.0, max_bytes=1 << 30, warn=pytest.fail)
        assert cache is not None
        client = IndexClient(ClientOptions(timeout=10.0, page_worker_from=big), page_store=cache.pages)
        with client:
            client.project_page(fixture_index.pypi_url, name)
            worker = client.page_worker
            assert worker is not None
            deadline = time.monotonic() + (5.0 if expect_child else 0.5)
            while not worker.started and time.monotonic() < deadline:
                time.sleep(0.01)
            assert worker.started is expect_child
        cache.close()


def test_with_a_store_a_page_from_16_kib_goes_to_the_child(tmp_path: Path) -> None:
    # Parsed here, a page is then also written as a form for the store, and the child's answer
    # is that form: with a store, pages from STORED_WORKER_FROM bytes go to the child.
    from lockd.cli.user_cache import open_user_cache  # noqa: PLC0415  # the CLI's page store

    body = _json_page()
    assert STORED_WORKER_FROM <= len(body) < 10 * 1024 * 1024
    worker = PageWorker(from_bytes=10 * 1024 * 1024, max_form_bytes=64 * 1024 * 1024)
    cache = open_user_cache(tmp_path, page_ttl=600.0, max_bytes=1 << 30, warn=pytest.fail)
    assert cache is not None
    try:
        parsed_here: list[str] = []
        _read(_pages(worker), body, parsed_here=parsed_here)
        assert parsed_here == [_JSON] and not worker.started  # no store: parsed here
        stored = ParsedPages(64 * 1024 * 1024, max_files=_MAX_FILES, worker=worker, store=cache.pages)
        _same(_read(stored, body, parsed_here=parsed_here), _here(body, _JSON))
        assert parsed_here == [_JSON] and worker.started  # the child's form built it
        assert cache.pages.get_form(_URL) is not None
        small = _json_page(versions=4)
        assert len(small) < STORED_WORKER_FROM
        _read(stored, small, parsed_here=parsed_here)
        assert parsed_here == [_JSON, _JSON]  # below it, parsed here still
    finally:
        worker.close()
        cache.close()
