"""A cold resolution waits on the index by the depth of the dependency graph, not by its size.

The prefetch walk fetches every likely page and metadata as soon as its parent's metadata is
known, many at once, so with latency on every request the round trips that follow one another
are about two per level of the graph (page, then metadata), whatever the number of projects.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

from fixtures.served_index import ControlledIndex
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.resolver import resolve
from lockd.resolver.finder import Finder
from lockd.routing import plan_for
from lockd.simple import DistFile, ProjectPage
from lockd.target import Target
from tests.support import PassThroughIndex

_LATENCY_MS = 100
# A call that took this long went to the index (or joined a fetch that did), not to a cache.
_NETWORK_S = _LATENCY_MS / 1000 * 0.8
# The walk once ran on 16 threads and reached 17 calls at once here; it now reaches about 40.
_MIN_IN_FLIGHT = 32


class _Timeline(PassThroughIndex):
    """An `IndexSource` passing everything to a real client, noting when each index call ran."""

    def __init__(self, client: IndexClient) -> None:
        super().__init__(client)
        self._lock = threading.Lock()
        self._running = 0
        self.most_running = 0
        self.calls: list[tuple[float, float]] = []

    def _timed(self, started: float) -> None:
        ended = time.monotonic()
        with self._lock:
            self._running -= 1
            if ended - started >= _NETWORK_S:
                self.calls.append((started, ended))

    def _start(self) -> float:
        with self._lock:
            self._running += 1
            self.most_running = max(self.most_running, self._running)
        return time.monotonic()

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        started = self._start()
        try:
            return self._client.project_page(index_url, name)
        finally:
            self._timed(started)

    def fetch_metadata(self, file: DistFile) -> bytes:
        started = self._start()
        try:
            return self._client.fetch_metadata(file)
        finally:
            self._timed(started)

    def sequential_round_trips(self) -> int:
        """The most index calls of which each began after the one before it ended."""
        count, free_at = 0, float("-inf")
        for started, ended in sorted(self.calls, key=lambda call: call[1]):
            if started >= free_at:
                count, free_at = count + 1, ended
        return count


def test_cold_resolution_waits_by_graph_depth_with_many_fetches_in_flight(
    mutable_index: ControlledIndex,
) -> None:
    target = Target.of("linux_x86_64", "3.11", "cu124")
    request = LockRequest(
        requirements=parse_requirements(
            "torch==2.5.1\ntorchvision==0.20.1\nfastapi\nuvicorn[standard]\nrequests\n"
        ),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=mutable_index.pypi_url, pytorch_base=mutable_index.pytorch_base),
        options=LockOptions(),
    )
    mutable_index.set_latency(_LATENCY_MS)
    with IndexClient(timeout=10.0) as client:
        timeline = _Timeline(client)
        lock = resolve(request, timeline)
        fetched = client.stats.requests
    pins = len(lock.packages)
    assert pins >= 40 and fetched >= 2 * pins  # a page and a metadata read per pin, at least
    assert timeline.most_running >= _MIN_IN_FLIGHT, timeline.most_running
    # Six levels below the roots, two round trips each, and slack for a loaded machine; one
    # round trip per request would be over 80.
    assert timeline.sequential_round_trips() <= 16, timeline.sequential_round_trips()


def _garbage_after(run: Callable[[], object]) -> list[str]:
    """The types of what `run` left to the cycle collector (by reference counting it would be freed)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def test_a_resolution_leaves_nothing_to_the_cycle_collector(mutable_index: ControlledIndex) -> None:
    # The walk once held the provider's methods: the provider, its walk and its memos (thousands
    # of tuples at 300 pins) were one cycle per resolution, freed only by the collector's passes
    # (10-17 ms every other fully cached request on a server, and a 190 ms one every twenty).
    target = Target.of("linux_x86_64", "3.11", None)
    plan = plan_for(target, default_url=mutable_index.pypi_url, pytorch_base=mutable_index.pytorch_base)

    def request(text: str) -> LockRequest:
        return LockRequest(
            requirements=parse_requirements(text),
            constraints=(),
            target=target,
            plan=plan,
            options=LockOptions(),
        )

    with IndexClient(timeout=10.0) as client:
        cold = _garbage_after(lambda: resolve(request("fastapi\nrequests\n"), client))
        assert client.stats.requests > 0  # the walk ran: its threads had steps queued
        cached = _garbage_after(lambda: resolve(request("fastapi\nrequests!=0.0.1\n"), client))
    assert [t for t in cold if t.startswith(("lockd.", "resolvelib."))] == []
    assert [t for t in cached if t.startswith(("lockd.", "resolvelib."))] == []


def test_a_finder_built_and_dropped_leaves_nothing_to_the_cycle_collector(
    mutable_index: ControlledIndex,
) -> None:
    # Two threads that build one project's finder at once keep one (`Finder.of`) and drop the
    # other; its releases and candidate files once held its methods: a cycle, which a loaded
    # machine's cold resolution left to the collector.
    target = Target.of("linux_x86_64", "3.11", None)
    with IndexClient(timeout=10.0) as client:
        page = client.project_page(mutable_index.pypi_url, canonicalize_name("lockd-fx-plain"))

        def built_and_dropped() -> None:
            finder = Finder(page.name, page, target, as_of=None, prereleases=False)
            assert finder.versions  # its releases were judged: the orders are in place
            assert finder.candidates(SpecifierSet(), None)  # and used

        garbage = _garbage_after(built_and_dropped)
    assert [t for t in garbage if t.startswith("lockd.")] == []
