"""IndexClient against the fixture index: pages, metadata paths, hashing, caches and failures."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.index import Counters
from fixtures.served_index import ControlledIndex, WatchedIndex
from fixtures.synthetic import SDIST_BUILD_MARKER
from lockd.errors import IndexUnavailable, SdistNeedsBuild, TamperedFile, UnknownProject
from lockd.index import (
    ClientOptions,
    FetchStats,
    IndexClient,
    PageBody,
    PageHead,
    memory_hash_cache,
    memory_metadata_cache,
)
from lockd.index.caches import MetadataKey, page_size_estimate
from lockd.simple import DistFile
from tests.support import loopback_http, wait_until

TORCH_WHEEL = "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"


def _counters(index: WatchedIndex) -> Counters:
    """The server logs a request after its last byte is sent, so a client may be ahead of it."""
    previous = index.counters()
    while True:
        time.sleep(0.05)
        current = index.counters()
        if current == previous:
            return current
        previous = current


def _file(client: IndexClient, index_url: str, project: str, filename: str) -> DistFile:
    page = client.project_page(index_url, canonicalize_name(project))
    return next(f for f in page.files if f.filename == filename)


@pytest.fixture
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=5.0) as instance:
        yield instance


def test_pypi_page_is_json_with_sizes_hashes_and_upload_times(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    page = client.project_page(fixture_index.pypi_url, canonicalize_name("lockd-fx-yanked"))
    by_name = {f.filename: f for f in page.files}
    yanked = by_name["lockd_fx_yanked-1.1-py3-none-any.whl"]
    # Only PEP 691 JSON carries sizes and upload times: their presence proves negotiation chose JSON.
    assert yanked.size is not None and yanked.upload_time is not None
    assert yanked.yanked == "broken build, use 1.0"
    assert by_name["lockd_fx_yanked-1.0-py3-none-any.whl"].yanked is None
    assert all(f.sha256 for f in page.files)


def test_pytorch_page_falls_back_to_html_with_local_versions(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    page = client.project_page(fixture_index.variant_url("cu124"), canonicalize_name("torch"))
    assert Version("2.5.1+cu124") in page.versions
    wheel = next(f for f in page.files if f.filename == "torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl")
    assert wheel.size is None and wheel.sha256 is not None  # HTML carries no sizes


def test_unknown_project_names_project_and_index(fixture_index: WatchedIndex, client: IndexClient) -> None:
    with pytest.raises(UnknownProject) as raised:
        client.project_page(fixture_index.pypi_url, canonicalize_name("lockd-fx-does-not-exist"))
    assert "lockd-fx-does-not-exist" in raised.value.message
    assert fixture_index.pypi_url in raised.value.message
    assert raised.value.code == "unknown-project"


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_server_errors_and_garbage_are_index_unavailable(mutable_index: ControlledIndex, mode: str) -> None:
    mutable_index.set_fault(mode, path_prefix="/simple/")
    with IndexClient(timeout=5.0) as client, pytest.raises(IndexUnavailable) as raised:
        client.project_page(mutable_index.pypi_url, canonicalize_name("idna"))
    assert raised.value.context["url"] == mutable_index.pypi_url + "idna/"
    assert raised.value.code == "index-unavailable"


def test_hanging_index_times_out_quickly(mutable_index: ControlledIndex) -> None:
    mutable_index.set_fault("hang", seconds=5, path_prefix="/simple/")
    started = time.monotonic()
    with IndexClient(timeout=0.5) as client, pytest.raises(IndexUnavailable) as raised:
        client.project_page(mutable_index.pypi_url, canonicalize_name("idna"))
    assert "did not answer in time" in raised.value.message
    assert time.monotonic() - started < 4


def test_unreachable_index_is_index_unavailable() -> None:
    with IndexClient(timeout=1.0) as client, pytest.raises(IndexUnavailable):
        client.project_page("http://127.0.0.1:9/simple/", canonicalize_name("idna"))


def test_metadata_via_pep658(fixture_index: WatchedIndex, client: IndexClient) -> None:
    page = client.project_page(fixture_index.variant_url("cu124"), canonicalize_name("torchvision"))
    wheel = next(f for f in page.files if f.metadata_url and f.kind == "wheel" and "cp311" in f.filename)
    fixture_index.reset_counters()
    metadata = client.fetch_metadata(wheel)
    assert b"Requires-Dist: torch (==2.5.1)" in metadata or b"Requires-Dist: torch (==2.4.1)" in metadata
    counters = _counters(fixture_index)
    assert counters.requests == {"metadata": 1}


class _AskedCache:
    """A real in-memory metadata cache that counts the lookups (the server's each query a database)."""

    def __init__(self) -> None:
        self._cache = memory_metadata_cache(1 << 20)
        self.asked = 0

    def get(self, key: MetadataKey, /) -> bytes | None:
        self.asked += 1
        return self._cache.get(key)

    def put(self, key: MetadataKey, metadata: bytes, /) -> object:
        return self._cache.put(key, metadata)

    def holds(self, key: MetadataKey) -> bool:
        """Whether the entry is there, without counting a lookup."""
        return self._cache.get(key) is not None


def test_a_metadata_fetch_asks_the_metadata_cache_once(fixture_index: WatchedIndex) -> None:
    cache = _AskedCache()
    with IndexClient(timeout=5.0, metadata_cache=cache) as fresh:
        wheel = _file(fresh, fixture_index.pypi_url, "torch", TORCH_WHEEL)
        assert MetadataKey.of(wheel) is not None
        first = fresh.fetch_metadata(wheel)
        assert cache.asked == 1 and fresh.stats.metadata_fetches == 1
        assert fresh.fetch_metadata(wheel) == first  # from the cache this time
        assert cache.asked == 2 and fresh.stats.metadata_fetches == 1


def test_it_says_what_it_holds_and_which_prefetches_fetch(fixture_index: WatchedIndex) -> None:
    # The resolver starts its prefetch walk at the first fetch it needs: these say when that is.
    with IndexClient(timeout=5.0) as fresh:
        url, name = fixture_index.pypi_url, canonicalize_name("lockd-fx-plain")
        assert not fresh.holds_page(url, name)
        wheel = next(f for f in fresh.project_page(url, name).files if f.filename.endswith(".whl"))
        assert fresh.holds_page(url, name) and not fresh.holds_page(url, canonicalize_name("idna"))
        assert fresh.prefetch_metadata([wheel])  # not cached: a fetch started
        wait_until(lambda: fresh.stats.metadata_fetches == 1, 10.0, "the prefetch to fetch")
        fresh.fetch_metadata(wheel)
        assert not fresh.prefetch_metadata([wheel])  # cached: nothing to fetch
        fresh.drop_pages()
        assert not fresh.holds_page(url, name)


def test_metadata_by_range_requests_never_downloads_the_wheel(
    fixture_index: WatchedIndex, client: IndexClient
) -> None:
    wheel = _file(client, fixture_index.pypi_url, "torch", TORCH_WHEEL)
    assert wheel.metadata_url is None and wheel.size is not None
    fixture_index.reset_counters()
    metadata = client.fetch_metadata(wheel)
    assert b"Requires-Dist: nvidia-cuda-runtime-cu12 (==12.4.127)" in metadata
    counters = _counters(fixture_index)
    assert counters.whole_downloads("torch-") == 0
    assert counters.range_files.get(TORCH_WHEEL, 0) >= 1, (counters, client.stats)
    assert counters.bytes["range"] < wheel.size / 20
    assert client.stats.whole_downloads == 0 and client.stats.range_requests >= 1


def test_metadata_falls_back_to_a_download_when_ranges_are_ignored(
    fixture_index: WatchedIndex, client: IndexClient, tmp_path: Path
) -> None:
    # http.server ignores Range and answers 200: the client must notice and read the whole zip.
    name = "idna"
    source = next(a for a in fixture_index.files(name) if a.filename.endswith(".whl"))
    (tmp_path / source.filename).write_bytes(fixture_index.content(source.filename))
    with loopback_http(partial(SimpleHTTPRequestHandler, directory=str(tmp_path))) as host:
        original = _file(client, fixture_index.pypi_url, name, source.filename)
        moved = DistFile.of(
            name=original.name, version=original.version, filename=original.filename,
            url=f"http://{host}/{source.filename}", kind="wheel",
            tags=original.tags, sha256=None, size=None, requires_python=None, yanked=None,
            upload_time=None, metadata_url=None, metadata_sha256=None,
        )  # fmt: skip
        metadata = client.fetch_metadata(moved)
    assert metadata.startswith(b"Metadata-Version:") and b"Name: idna" in metadata
    assert client.stats.whole_downloads == 1


def test_sdist_static_metadata(fixture_index: WatchedIndex, client: IndexClient) -> None:
    sdist = _file(client, fixture_index.pypi_url, "lockd-fx-sdist-static", "lockd_fx_sdist_static-1.0.tar.gz")
    metadata = client.fetch_metadata(sdist)
    assert b"Metadata-Version: 2.2" in metadata and b"Requires-Dist: lockd-fx-plain>=1.0" in metadata


def test_dynamic_sdist_needs_build_and_nothing_runs(fixture_index: WatchedIndex, client: IndexClient) -> None:
    Path(SDIST_BUILD_MARKER).unlink(missing_ok=True)
    sdist = _file(
        client, fixture_index.pypi_url, "lockd-fx-sdist-dynamic", "lockd_fx_sdist_dynamic-1.0.tar.gz"
    )
    with pytest.raises(SdistNeedsBuild) as raised:
        client.fetch_metadata(sdist)
    assert "lockd-fx-sdist-dynamic 1.0" in raised.value.message
    assert raised.value.context["project"] == "lockd-fx-sdist-dynamic"
    # The refusal is remembered: asking again neither downloads nor builds.
    fixture_index.reset_counters()
    with pytest.raises(SdistNeedsBuild):
        client.fetch_metadata(sdist)
    assert _counters(fixture_index).requests == {}
    assert not Path(SDIST_BUILD_MARKER).exists()


def test_hash_of_a_file_the_index_gives_no_hash_for(fixture_index: WatchedIndex) -> None:
    hashes = memory_hash_cache(16)
    with IndexClient(timeout=5.0, hash_cache=hashes) as first:
        page = first.project_page(fixture_index.variant_url("cu124"), canonicalize_name("torchaudio"))
        hashless = next(f for f in page.files if f.sha256 is None)
        expected = hashlib.sha256(fixture_index.content(hashless.filename, index="cu124")).hexdigest()
        assert first.file_sha256(hashless) == expected
    with IndexClient(timeout=5.0, hash_cache=hashes) as second:
        fixture_index.reset_counters()
        assert second.file_sha256(hashless) == expected
        # Only a HEAD to build the URL + size + ETag key: the cached hash avoids the download.
        assert _counters(fixture_index).whole_downloads("torchaudio") == 0
        assert second.stats.whole_downloads == 0


def test_index_hash_is_used_without_a_request(fixture_index: WatchedIndex, client: IndexClient) -> None:
    wheel = _file(client, fixture_index.pypi_url, "torch", TORCH_WHEEL)
    fixture_index.reset_counters()
    assert client.file_sha256(wheel) == wheel.sha256
    assert _counters(fixture_index).requests == {}


def test_tampered_file_is_detected_when_streamed(mutable_index: ControlledIndex) -> None:
    with IndexClient(timeout=5.0) as client:
        sdist = _file(
            client, mutable_index.pypi_url, "lockd-fx-sdist-static", "lockd_fx_sdist_static-1.0.tar.gz"
        )
        wheel = _file(
            client,
            mutable_index.pypi_url,
            "idna",
            next(a.filename for a in mutable_index.files("idna") if a.filename.endswith(".whl")),
        )
        mutable_index.replace_content(sdist.filename)
        mutable_index.replace_content(wheel.filename)
        with pytest.raises(TamperedFile) as raised:
            client.fetch_metadata(sdist)  # the sdist is streamed whole, so its hash is checked
        assert raised.value.context["expected"] == sdist.sha256
        assert raised.value.code == "hash-mismatch"
        with pytest.raises(TamperedFile):
            client.file_sha256(wheel, verify=True)


def test_page_cache_ttl_and_coalescing(mutable_index: ControlledIndex) -> None:
    name = canonicalize_name("idna")
    with IndexClient(timeout=5.0, page_ttl=0.5) as client:
        mutable_index.set_latency(200)
        pages = []
        threads = [
            threading.Thread(target=lambda: pages.append(client.project_page(mutable_index.pypi_url, name)))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(pages) == 8 and all(p is pages[0] for p in pages)
        assert _counters(mutable_index).requests["page"] == 1
        mutable_index.set_latency(0)
        client.project_page(mutable_index.pypi_url, name)
        assert _counters(mutable_index).requests["page"] == 1
        time.sleep(0.6)
        client.project_page(mutable_index.pypi_url, name)
        assert _counters(mutable_index).requests["page"] == 2
        assert client.stats.pages == 2 and client.stats.cache_hits >= 1


def test_max_connections_bounds_parallel_requests(mutable_index: ControlledIndex) -> None:
    """LOCKD_HTTP_MAX_CONNECTIONS is a real bound: with 1, three pages are fetched one after another."""
    names = [canonicalize_name(n) for n in ("idna", "certifi", "urllib3")]
    with IndexClient(timeout=5.0, max_connections=1) as client:
        mutable_index.set_latency(300)
        try:
            started = time.monotonic()
            threads = [
                threading.Thread(target=client.project_page, args=(mutable_index.pypi_url, n)) for n in names
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
        finally:
            mutable_index.set_latency(0)
    assert elapsed >= 0.85, f"3 pages at 300 ms each took {elapsed:.2f} s over one connection"


def test_metadata_cache_is_shared_by_file_identity(fixture_index: WatchedIndex) -> None:
    cache = memory_metadata_cache(1024 * 1024)
    with IndexClient(metadata_cache=cache) as first:
        wheel = _file(first, fixture_index.pypi_url, "torch", TORCH_WHEEL)
        metadata = first.fetch_metadata(wheel)
    key = MetadataKey.of(wheel)
    assert wheel.sha256 is not None and key is not None and cache.get(key) == metadata
    assert key == MetadataKey(
        page_url=fixture_index.pypi_url + "torch/", filename=TORCH_WHEEL, sha256=wheel.sha256
    )
    with IndexClient(metadata_cache=cache) as second:
        fixture_index.reset_counters()
        assert second.fetch_metadata(wheel) == metadata
        assert _counters(fixture_index).requests == {}
        assert second.stats == FetchStats(cache_hits=1)


def test_a_prefetch_asks_the_metadata_cache_once_per_file(fixture_index: WatchedIndex) -> None:
    cache = _AskedCache()
    with IndexClient(metadata_cache=cache) as client:
        wheel = _file(client, fixture_index.pypi_url, "torch", TORCH_WHEEL)
        key = MetadataKey.of(wheel)
        assert key is not None
        client.prefetch_metadata([wheel])
        wait_until(lambda: cache.holds(key), 10.0, "the prefetch never stored the metadata")
        assert cache.asked == 1  # the prefetch's own check: its fetch goes straight to the index
        assert client.fetch_metadata(wheel).startswith(b"Metadata-Version:")
        assert client.stats.metadata_fetches == 1
        client.prefetch_metadata([wheel])  # cached now: nothing is started
        assert client.stats.metadata_fetches == 1


def test_prefetch_is_joined_not_repeated(mutable_index: ControlledIndex) -> None:
    with IndexClient(timeout=5.0) as client:
        wheel = _file(client, mutable_index.pypi_url, "torch", TORCH_WHEEL)
        mutable_index.reset_counters()
        mutable_index.set_latency(150)
        client.prefetch_metadata([wheel])
        time.sleep(0.05)  # let the pool start it, so fetch_metadata joins it in flight
        metadata = client.fetch_metadata(wheel)
        assert metadata.startswith(b"Metadata-Version:")
        assert client.stats.metadata_fetches == 1
        ranged = _counters(mutable_index).range_files[TORCH_WHEEL]
        client.prefetch_metadata([wheel])
        client.fetch_metadata(wheel)
        assert _counters(mutable_index).range_files[TORCH_WHEEL] == ranged


def test_page_cache_keeps_pages_by_their_size_in_bytes(fixture_index: WatchedIndex) -> None:
    """A page larger than its share of the byte bound is fetched again each time; a small one is kept."""
    small_name, large_name = canonicalize_name("idna"), canonicalize_name("torch")
    with IndexClient(timeout=5.0) as measuring:
        small = page_size_estimate(measuring.project_page(fixture_index.pypi_url, small_name))
        large = page_size_estimate(measuring.project_page(fixture_index.pypi_url, large_name))
    assert large > 2 * small
    # One entry may take an eighth of the bound: the small page fits, the large one does not.
    options = ClientOptions(timeout=5.0, page_cache_bytes=8 * (small + large) // 2)
    with IndexClient.from_options(options) as client:
        for _ in range(2):
            client.project_page(fixture_index.pypi_url, small_name)
            client.project_page(fixture_index.pypi_url, large_name)
        assert client.stats.pages == 3 and client.stats.cache_hits == 1


class _DictPageStore:
    """A `PageStore` that keeps everything (the CLI's keeps pages on disk within a TTL)."""

    def __init__(self) -> None:
        self.pages: dict[str, PageBody] = {}
        self.heads: dict[str, PageHead] = {}
        self.forms: dict[str, bytes] = {}

    def get(self, url: str, /) -> PageBody | None:
        return self.pages.get(url)

    def put(self, url: str, page: PageBody, /) -> None:
        self.pages[url] = page
        self.heads[url] = PageHead(
            sha256=hashlib.sha256(page.body).hexdigest(), content_type=page.content_type, url=page.url
        )

    def put_head(self, url: str, head: PageHead, /) -> None:
        self.pages.pop(url, None)
        self.heads[url] = head

    def head(self, url: str, /) -> PageHead | None:
        return self.heads.get(url)

    def get_form(self, url: str, /) -> bytes | None:
        return self.forms.get(url)

    def put_form(self, url: str, form: bytes, /) -> None:
        self.forms[url] = form


def test_a_page_store_keeps_fetched_pages_and_answers_a_later_client(mutable_index: ControlledIndex) -> None:
    store = _DictPageStore()
    name = canonicalize_name("numpy")
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=store) as first:
        fetched = first.project_page(mutable_index.pypi_url, name)
        assert first.stats.pages == 1
    url = f"{mutable_index.pypi_url}{name}/"
    # Kept by its head and the form of its parse: the form stands for the body, which is not kept.
    assert list(store.heads) == [url] and list(store.forms) == [url] and store.pages == {}
    mutable_index.reset_counters()
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=store) as later:
        assert later.project_page(mutable_index.pypi_url, name) == fetched
        assert later.stats.pages == 0 and later.stats.cache_hits == 1
    assert _counters(mutable_index).requests == {}
    # Without its form the page is fetched again (and its form written again).
    del store.forms[url]
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=store) as again:
        assert again.project_page(mutable_index.pypi_url, name) == fetched
        assert again.stats.pages == 1
    assert list(store.forms) == [url] and store.pages == {}
    # A page the client cannot parse is refused, and never kept.
    mutable_index.set_fault("garbage", path_prefix="/simple/filelock/")
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=store) as broken:
        with pytest.raises(IndexUnavailable):
            broken.project_page(mutable_index.pypi_url, canonicalize_name("filelock"))
    assert list(store.heads) == [url]
