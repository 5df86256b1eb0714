"""The index client against the hostile index (`fixtures.hostile`), in process: exact memory peaks
(tracemalloc) and the default limits, which the deadline, not a lowered limit, must end in time.

tests/test_hostile_index.py runs the same attacks against a running server.
"""

from __future__ import annotations

import hashlib
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest
from packaging.utils import canonicalize_name

from fixtures.hostile import HostileIndex, HostileLimits
from fixtures.index import FixtureIndex
from lockd.deadline import deadline_scope
from lockd.errors import ResolutionTimeout, ResponseTooLarge, UnusableMetadata
from lockd.index import ClientOptions, IndexClient, MetadataKey, memory_metadata_cache
from lockd.index.caches import page_size_estimate
from lockd.simple import DistFile
from tests.support import QuietHandler, loopback_http

MIB = 1024 * 1024
BUDGET = 1.5
MARGIN = 1.0  # a loaded 2-core box; the deadline itself holds to ~0.1 s (test_network.py)


@contextmanager
def _peak() -> Iterator[list[int]]:
    """The peak of Python allocations inside the block, in bytes (filled in at its end)."""
    found: list[int] = []
    tracemalloc.start()
    try:
        yield found
    finally:
        found.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def _only(client: IndexClient, index_url: str, project: str, kind: str = "wheel") -> DistFile:
    page = client.project_page(index_url, canonicalize_name(project))
    return next(f for f in page.files if f.kind == kind and "1.0" in f.filename)


@pytest.fixture
def small(make_hostile_index: Callable[[HostileLimits], HostileIndex]) -> HostileIndex:
    """The attacks at sizes a unit test can read whole or in part quickly."""
    return make_hostile_index(HostileLimits(page_files=5_000, huge_wheel_bytes=64 * MIB))


def test_an_sdist_of_400k_members_ends_at_the_deadline_under_the_default_limits(
    hostile_index: HostileIndex,
) -> None:
    with IndexClient() as client:
        sdist = _only(client, hostile_index.index_url("many-members"), "many-members", "sdist")
        started = time.monotonic()
        with _peak() as peak, deadline_scope(started + BUDGET), pytest.raises(ResolutionTimeout) as raised:
            client.fetch_metadata(sdist)
        elapsed = time.monotonic() - started
    assert "many_members-1.0.tar.gz" in raised.value.message
    assert elapsed < BUDGET + MARGIN, f"{elapsed:.2f} s for a {BUDGET} s deadline"
    assert peak[0] < 16 * MIB, f"peak {peak[0] / MIB:.1f} MiB walking the members"


def test_an_endless_page_is_cut_at_the_page_limit(hostile_index: HostileIndex) -> None:
    with IndexClient(ClientOptions(max_page_bytes=8 * MIB)) as client, _peak() as peak:
        with pytest.raises(ResponseTooLarge, match="more than 8,388,608 bytes"):
            client.project_page(hostile_index.index_url("endless-page"), canonicalize_name("endless"))
    assert peak[0] < 3 * 8 * MIB, f"peak {peak[0] / MIB:.1f} MiB for an 8 MiB limit"


def test_a_10_gib_gzip_bomb_is_refused_by_its_ratio(hostile_index: HostileIndex) -> None:
    with IndexClient() as client, _peak() as peak:
        with pytest.raises(ResponseTooLarge, match=r"over 200:1"):
            client.project_page(hostile_index.index_url("gzip-bomb"), canonicalize_name("gzip-bomb"))
    assert peak[0] < 64 * MIB, f"peak {peak[0] / MIB:.1f} MiB for a 10 GiB bomb"


def test_a_page_with_more_files_than_the_limit_is_refused(small: HostileIndex) -> None:
    with IndexClient(ClientOptions(max_page_files=1_000)) as client:
        with pytest.raises(ResponseTooLarge, match=r"lists 1,\d{3} files, more than lockd reads \(1,000\)"):
            client.project_page(small.index_url("many-files"), canonicalize_name("many-files"))


def test_a_wheel_whose_server_ignores_range_is_read_up_to_its_metadata_only(small: HostileIndex) -> None:
    with IndexClient() as client:
        wheel = _only(client, small.index_url("range-ignored"), "range-ignored")
        with _peak() as peak:
            metadata = client.fetch_metadata(wheel)
    assert metadata.startswith(b"Metadata-Version: 2.1\nName: range-ignored\nVersion: 1.0\n")
    assert peak[0] < 4 * MIB, f"peak {peak[0] / MIB:.1f} MiB streaming a 64 MiB wheel"
    assert client.stats.whole_downloads == 1


def test_refused_metadata_is_remembered_and_never_cached(small: HostileIndex) -> None:
    cache = memory_metadata_cache(MIB)
    with IndexClient(metadata_cache=cache) as client:
        wheel = _only(client, small.index_url("metadata-mismatch"), "lockd-fx-misnamed")
        for _ in range(2):
            with pytest.raises(UnusableMetadata) as raised:
                client.fetch_metadata(wheel)
            assert raised.value.code == "metadata-mismatch"
        assert client.stats.metadata_fetches == 1
    assert len(cache) == 0


# -- metadata bound to its file's identity, not to a claimed hash ---------------------------------


def _lying_index(project: str, filename: str, sha256: str, metadata: bytes) -> type[BaseHTTPRequestHandler]:
    """An index whose `project` page lists `filename` with another index's `sha256`, and serves
    consistent but false PEP 658 metadata for it (its Name and Version match the filename)."""

    class Lying(QuietHandler):
        def do_GET(self) -> None:
            if self.path.endswith(f"/{project}/"):
                entry = {
                    "filename": filename, "url": f"/files/{filename}", "hashes": {"sha256": sha256},
                    "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
                }  # fmt: skip
                body, kind = json.dumps({"meta": {"api-version": "1.1"}, "files": [entry]}).encode(), "json"
            elif self.path == f"/files/{filename}.metadata":
                body, kind = metadata, "octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", f"application/vnd.pypi.simple.v1+{kind}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Lying


def test_metadata_of_the_same_file_name_and_hash_on_another_index_is_never_shared(
    fixture_index: FixtureIndex,
) -> None:
    cache = memory_metadata_cache(MIB)
    with IndexClient(metadata_cache=cache) as client:
        honest = _file(client, fixture_index.pypi_url, "lockd-fx-plain")
    assert honest.sha256 is not None
    lie = f"Metadata-Version: 2.1\nName: lockd-fx-plain\nVersion: {honest.version}\nRequires-Dist: certifi\n"
    handler = _lying_index("lockd-fx-plain", honest.filename, honest.sha256, lie.encode())
    with loopback_http(handler) as host, IndexClient(metadata_cache=cache) as client:
        forged = _file(client, f"http://{host}/simple/", "lockd-fx-plain")
        assert (forged.filename, forged.sha256) == (honest.filename, honest.sha256)
        assert b"certifi" in client.fetch_metadata(forged)  # consistent, so usable on its own index
        real = client.fetch_metadata(honest)
    assert b"certifi" not in real
    assert MetadataKey.of(forged) != MetadataKey.of(honest)
    assert len(cache) == 2


def _file(client: IndexClient, index_url: str, project: str) -> DistFile:
    page = client.project_page(index_url, canonicalize_name(project))
    return max((f for f in page.files if f.kind == "wheel"), key=lambda f: f.version)


def test_big_pages_stay_within_the_page_cache_bound(
    make_hostile_index: Callable[[HostileLimits], HostileIndex],
) -> None:
    """16 pages of 1,000 files through an 8 MiB page cache: the newest stay, the oldest are evicted.

    (That the cache's byte estimate holds against tracemalloc is tests/index/test_caches.py's.)
    """
    hostile = make_hostile_index(HostileLimits(big_projects=16, big_page_links=1_000))
    url = hostile.index_url("big-pages")
    projects = [canonicalize_name(p) for p in hostile.scenario("big-pages").projects()]
    with IndexClient(ClientOptions(page_cache_bytes=8 * MIB)) as client:
        sizes = [page_size_estimate(client.project_page(url, project)) for project in projects]
        assert min(sizes) > MIB // 2 and max(sizes) < MIB  # each fits (an eighth of the bound), not all
        assert client._pages.cached_bytes <= 8 * MIB < sum(sizes)
        before = client.stats
        client.project_page(url, projects[-1])
        assert client.stats.cache_hits == before.cache_hits + 1  # the newest is kept
        client.project_page(url, projects[0])
        assert client.stats.pages == before.pages + 1  # the oldest was evicted
