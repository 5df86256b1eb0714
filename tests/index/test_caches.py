"""`lockd.index.caches`: every in-memory cache of the index client is bounded, pages in bytes."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Iterator

from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.index.caches import (
    HashCache,
    MetadataCache,
    MetadataKey,
    memory_hash_cache,
    memory_metadata_cache,
    page_cache,
    page_size_estimate,
)
from lockd.simple import DistFile, ProjectPage, parse_json_page

_PLATFORMS = ("manylinux_2_17_x86_64.manylinux2014_x86_64", "macosx_11_0_arm64", "win_amd64")


def _page_body(project: str, versions: int) -> bytes:
    files = []
    for minor in range(versions):
        for platform in _PLATFORMS:
            filename = f"{project}-1.{minor}.0-cp311-cp311-{platform}.whl"
            files.append({
                "filename": filename,
                "url": f"https://files.pythonhosted.org/packages/ab/cd/{'0' * 60}/{filename}",
                "hashes": {"sha256": "a" * 64},
                "requires-python": ">=3.9",
                "size": 123456,
                "upload-time": "2024-10-18T15:21:02.123456Z",
                "core-metadata": {"sha256": "b" * 64},
            })  # fmt: skip
    return json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": files}).encode()


def _page(project: str, versions: int) -> ProjectPage:
    return parse_json_page(_page_body(project, versions), f"https://pypi.org/simple/{project}/", project)


def test_the_page_estimate_is_close_to_what_a_parsed_page_holds() -> None:
    body = _page_body("demo", 300)
    _page("demo", 300)  # shared tag sets and versions are parsed once per process, not per page
    gc.collect()
    tracemalloc.start()
    try:
        page = parse_json_page(body, "https://pypi.org/simple/demo/", "demo")
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(page.files) == 900
    assert 0.75 * held <= page_size_estimate(page) <= 1.25 * held, (page_size_estimate(page), held)


def test_pages_leave_least_recently_used_first_once_their_bytes_pass_the_bound() -> None:
    pages = [_page(f"p{n}", 5) for n in range(10)]
    each = max(page_size_estimate(page) for page in pages)
    cache = page_cache(8 * each, ttl=600.0)
    for page in pages[:8]:
        cache.put(page.index_url, page)
    assert cache.get(pages[0].index_url) is pages[0]  # used: no longer the coldest
    cache.put(pages[8].index_url, pages[8])
    cache.put(pages[9].index_url, pages[9])
    assert cache.size <= 8 * each
    assert cache.get(pages[1].index_url) is None and cache.get(pages[2].index_url) is None
    assert cache.get(pages[0].index_url) is pages[0] and cache.get(pages[9].index_url) is pages[9]


def test_a_page_over_an_eighth_of_the_bound_is_never_kept() -> None:
    small, large = _page("small", 1), _page("large", 40)
    cache = page_cache(8 * page_size_estimate(small), ttl=600.0)
    assert cache.put(small.index_url, small) is True
    assert cache.put(large.index_url, large) is False
    assert cache.get(large.index_url) is None and cache.get(small.index_url) is small


def test_pages_expire_after_the_page_ttl() -> None:
    now = [1000.0]
    page = _page("demo", 2)
    cache = page_cache(1024 * 1024, ttl=600.0, clock=lambda: now[0])
    cache.put(page.index_url, page)
    now[0] += 599.0
    assert cache.get(page.index_url) is page
    now[0] += 1.0
    assert cache.get(page.index_url) is None
    assert cache.size == 0


def test_foreign_versions_count_towards_a_page() -> None:
    name = canonicalize_name("demo")
    bare = ProjectPage(name, "https://i/demo/", ())
    foreign = ProjectPage(name, "https://i/demo/", (), frozenset(Version(f"1.{n}") for n in range(10)))
    assert page_size_estimate(bare) == 0 < page_size_estimate(foreign)


class _CountedFiles(tuple[DistFile, ...]):
    """A page's files that count how often they are walked."""

    walks = 0

    def __iter__(self) -> Iterator[DistFile]:
        type(self).walks += 1
        return super().__iter__()


def test_a_page_is_measured_once_however_often_it_is_cached_again() -> None:
    # LOCKD_PAGE_TTL=0: every resolution caches each (reused) page again.
    parsed = _page("demo", 50)
    page = ProjectPage(parsed.name, parsed.index_url, _CountedFiles(parsed.files))
    cache = page_cache(64 * 1024 * 1024, ttl=0.0)
    for _ in range(5):
        cache.put(page.index_url, page)
    assert page_size_estimate(page) == page_size_estimate(parsed)
    assert _CountedFiles.walks == 1


def _key(n: int) -> MetadataKey:
    return MetadataKey(page_url="https://i/demo/", filename=f"demo-{n}-py3-none-any.whl", sha256=f"{n:064x}")


def test_metadata_is_bounded_in_bytes_and_hashes_in_entries() -> None:
    metadata: MetadataCache = memory_metadata_cache(800)
    for n in range(20):
        metadata.put(_key(n), b"m" * 100)
    assert metadata.get(_key(19)) == b"m" * 100
    assert metadata.get(_key(0)) is None
    assert sum(metadata.get(_key(n)) is not None for n in range(20)) == 8

    hashes: HashCache = memory_hash_cache(16)
    for n in range(40):
        hashes.put(f"https://files.example/{n}.whl size=1 etag=", f"{n:064x}")
    assert sum(hashes.get(f"https://files.example/{n}.whl size=1 etag=") is not None for n in range(40)) == 16
    assert hashes.get("https://files.example/39.whl size=1 etag=") == f"{39:064x}"


def test_counting_a_page_reads_no_file_details() -> None:
    """A file's URL, hashes and upload time are worked out when a resolution reads them, not to weigh a page."""
    page = _page("lazy", 3)
    before = page_size_estimate(page)
    assert not any(type(file._details) is tuple for file in page.files)
    for file in page.files:
        assert file.url.endswith(file.filename)
    after = page_size_estimate(page)
    assert 0.9 * after <= before <= 1.1 * after, (before, after)
