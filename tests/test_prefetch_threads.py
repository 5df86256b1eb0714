"""Resolutions share the index client's threads: started once, each resolution's work its own.

The prefetch walk and metadata prefetches run on the client's `WorkerPool`. A second resolution
starts no thread; one that fails leaves nothing queued there; a deadline bounds the work of its
own resolution on those threads, and no other's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import NormalizedName

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd.cli.user_cache import open_user_cache
from lockd.deadline import check_deadline, seconds_left
from lockd.errors import IndexUnavailable, ResolutionTimeout
from lockd.index import IndexClient, WorkerPool
from lockd.index.threads import TaskScope
from lockd.lock import Lock
from lockd.resolver import resolve
from lockd.simple import DistFile, ProjectPage
from tests.support import PassThroughIndex, linux_request

_DOWN = "lockd-fx-zzz-down"  # after every real name, so the resolver asks for it last


class _Threads(PassThroughIndex):
    """An `IndexSource` passing everything to a real client, noting which threads asked what."""

    def __init__(self, client: IndexClient, *, hold: str | None = None) -> None:
        super().__init__(client)
        self._hold = hold  # a page that a pool thread asks for waits until the deadline
        self.asking: set[int] = set()
        self.prefetched: list[str] = []

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        on_pool = threading.current_thread() is not threading.main_thread()
        if on_pool:
            self.asking.add(threading.get_ident())
        if name == _DOWN and not on_pool:
            raise IndexUnavailable(f"{name}: the index is down", context={})
        if name == self._hold and on_pool:
            left = seconds_left()
            threading.Event().wait(10.0 if left is None else max(0.0, left))
            check_deadline("holding a walk thread")
        return self._client.project_page(index_url, name)

    def prefetch_metadata(self, files: Iterable[DistFile]) -> bool:
        files = list(files)
        self.prefetched.extend(f.filename for f in files)
        return self._client.prefetch_metadata(files)

    @property
    def workers(self) -> WorkerPool:
        return self._client.workers


def _fetch_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("lockd-fetch") and t.ident}


def test_two_resolutions_run_on_the_threads_the_client_started(fixture_index: WatchedIndex) -> None:
    before = _fetch_threads()
    with IndexClient(timeout=10.0) as client:
        client.workers.wait_started()  # they start beside the caller
        started = _fetch_threads() - before
        assert len(started) == client.options.max_connections
        first = _Threads(client)
        resolve(linux_request(fixture_index, "fastapi"), first)
        second = _Threads(client)
        client.drop_pages()  # pages again, so the walk runs again
        resolve(linux_request(fixture_index, "fastapi\nrequests"), second)
        assert first.asking and second.asking
        assert first.asking | second.asking <= started
        assert _fetch_threads() - before == started  # no thread started, none ended
    assert _fetch_threads() == before  # closing the client ends them


def test_a_failed_resolution_leaves_no_prefetch_queued(fixture_index: WatchedIndex) -> None:
    # One thread, held by the walk until the deadline: the metadata prefetch that the resolver
    # asks for meanwhile waits behind it, and the resolution fails with it queued.
    workers = WorkerPool(1, "test-failed")
    try:
        with IndexClient(timeout=10.0, workers=workers) as client:
            source = _Threads(client, hold="lockd-fx-plain")
            with pytest.raises(IndexUnavailable):
                resolve(
                    linux_request(fixture_index, f"lockd-fx-plain\n{_DOWN}"),
                    source,
                    deadline=time.monotonic() + 1,
                )
            assert any(name.startswith("lockd_fx_plain-") for name in source.prefetched)
            after_failure = client.stats
            # Behind anything still queued on the one thread; it would have fetched the metadata.
            with workers.scope() as tasks:
                tasks.map(lambda _: None, [0])
            assert client.stats.metadata_fetches == after_failure.metadata_fetches == 0
    finally:
        workers.close()


def test_a_deadline_bounds_its_resolution_on_the_shared_threads_and_no_other(
    mutable_index: ControlledIndex,
) -> None:
    with IndexClient(timeout=30.0) as client:
        mutable_index.set_latency(5000)  # every request: longer than the deadline
        started = time.monotonic()
        with pytest.raises(ResolutionTimeout):
            resolve(linux_request(mutable_index, "fastapi"), client, deadline=started + 0.5)
        # The walk's threads stopped at the deadline too: the resolution waited for them.
        assert time.monotonic() - started < 4.0
        mutable_index.set_latency(0)
        lock = resolve(linux_request(mutable_index, "fastapi"), client)  # same threads, no deadline left over
    assert "fastapi" in lock.pins


def test_the_resolver_asks_to_prefetch_each_file_once(fixture_index: WatchedIndex) -> None:
    # find_matches puts a name's newest candidate first at most of its calls; asking the client
    # each time cost a metadata cache lookup per call (683 a fully cached 304-pin resolution).
    with IndexClient(timeout=10.0) as client:
        watched = _Threads(client)
        lock = resolve(
            linux_request(
                fixture_index, "fastapi\nuvicorn[standard]\nlockd-fx-revise-app\nlockd-fx-revise-app2"
            ),
            watched,
        )
    assert lock.packages and watched.prefetched
    assert sorted(watched.prefetched) == sorted(set(watched.prefetched))


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions given to the resolutions' thread pool, in order."""
    names: list[str] = []
    submit = TaskScope.submit

    def noting(self: TaskScope, function: Callable[..., Any], *args: Any) -> Any:
        names.append(getattr(function, "__name__", ""))
        return submit(self, function, *args)

    monkeypatch.setattr(TaskScope, "submit", noting)
    return names


def _walked(client: IndexClient, index: WatchedIndex, text: str, submitted: list[str]) -> tuple[bool, Lock]:
    """Whether resolving `text` started the prefetch walk, and the lock."""
    submitted.clear()
    lock = resolve(linux_request(index, text), client)
    return "_warm" in submitted, lock


def test_the_walk_starts_at_the_first_fetch_and_never_for_a_resolution_its_caches_answer(
    fixture_index: WatchedIndex, submitted: list[str]
) -> None:
    # With nothing to fetch the walk hides no wait: its threads only took the GIL from the
    # resolving thread (a tenth of a fully cached 300-pin resolution).
    with IndexClient(timeout=10.0) as client:

        def walked(text: str) -> tuple[bool, Lock]:
            return _walked(client, fixture_index, text, submitted)

        cold, first = walked("fastapi")
        cached, again = walked("fastapi!=0.0.0.1")
        grown, more = walked("fastapi!=0.0.0.2\nrequests")
    assert cold, "a cold resolution walks"
    assert not cached, "a resolution its caches answer whole does not"
    assert again.pins == first.pins
    assert grown, "requests' page is not cached: the walk starts there"
    assert set(first.pins) < set(more.pins)


def test_a_resolution_its_page_store_answers_does_not_walk_and_one_past_the_ttl_does(
    fixture_index: WatchedIndex, submitted: list[str], tmp_path: Path
) -> None:
    # `lockd lock` on a filled cache: its pages fresh on disk, its metadata there too. A walk
    # there fetched nothing: its threads only read the cache ahead of the resolver, queued on
    # its one reading connection (a fully cached pypi-200 `lockd lock`: 1.40 -> 1.28 s).
    def walked(text: str, *, later: float = 0.0) -> tuple[bool, Lock]:
        cache = open_user_cache(
            tmp_path, page_ttl=600.0, max_bytes=1 << 30, warn=pytest.fail, clock=lambda: time.time() + later
        )
        assert cache is not None
        try:
            with IndexClient(
                timeout=10.0, metadata_cache=cache.metadata, hash_cache=cache.hashes, page_store=cache.pages
            ) as client:
                return _walked(client, fixture_index, text, submitted)
        finally:
            cache.close()

    cold, first = walked("fastapi")
    stored, again = walked("fastapi!=0.0.0.1")
    stale, later = walked("fastapi!=0.0.0.2", later=601.0)
    assert cold, "a cold resolution walks"
    assert not stored, "one its page store answers whole does not"
    assert stale, "pages past their TTL are fetched again: the walk starts"
    assert first.pins == again.pins == later.pins
