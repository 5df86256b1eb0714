"""`lockd.cli.user_cache`: identity-bound metadata, page freshness, the size bound, and a file
that breaks while in use. Real SQLite files in a temporary directory; the clock is a value."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from fixtures.served_index import WatchedIndex
from lockd.cli import cache_file, user_cache
from lockd.cli.user_cache import CACHE_FILE_NAME, UserCache, open_user_cache
from lockd.index import ClientOptions, IndexClient, MetadataKey, PageBody, PageHead
from tests.support import wait_until

_MIB = 1024 * 1024


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _warnings() -> list[str]:
    return []


def _open(
    directory: Path,
    clock: _Clock,
    warnings: list[str],
    *,
    page_ttl: float = 600.0,
    max_bytes: int = 64 * _MIB,
) -> UserCache:
    cache = open_user_cache(
        directory, page_ttl=page_ttl, max_bytes=max_bytes, warn=warnings.append, clock=clock
    )
    assert cache is not None, warnings
    return cache


def _key(page_url: str, filename: str = "numpy-2.0.0-cp311-cp311-manylinux_2_28_x86_64.whl") -> MetadataKey:
    return MetadataKey(page_url=page_url, filename=filename, sha256="ab" * 32)


def test_metadata_answers_only_for_the_exact_file_identity(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    cache.metadata.put(_key("https://a.example/simple/numpy/"), b"Metadata-Version: 2.1\nName: numpy\n")
    cache.close()
    reopened = _open(tmp_path, clock, warnings)
    assert reopened.metadata.get(_key("https://a.example/simple/numpy/")) == (
        b"Metadata-Version: 2.1\nName: numpy\n"
    )
    # Same filename and claimed hash on another index, or another file on the same page: no answer.
    assert reopened.metadata.get(_key("https://b.example/simple/numpy/")) is None
    assert reopened.metadata.get(_key("https://a.example/simple/numpy/", "numpy-2.0.0.tar.gz")) is None
    reopened.close()
    assert warnings == []


def test_pages_are_served_within_their_ttl_and_not_after(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings, page_ttl=600)
    page = PageBody(body=b"{}", content_type="application/vnd.pypi.simple.v1+json", url="https://x/simple/a/")
    cache.pages.put("https://x/simple/a/", page)
    cache.close()
    clock.now += 599
    cache = _open(tmp_path, clock, warnings, page_ttl=600)
    assert cache.pages.get("https://x/simple/a/") == page
    cache.close()
    clock.now += 2
    cache = _open(tmp_path, clock, warnings, page_ttl=600)
    assert cache.pages.get("https://x/simple/a/") is None
    cache.close()
    # A TTL of 0 neither serves nor keeps pages.
    cache = _open(tmp_path, clock, warnings, page_ttl=0)
    cache.pages.put("https://x/simple/b/", page)
    assert cache.pages.get("https://x/simple/b/") is None
    cache.close()


def test_the_file_stays_under_its_bound_and_keeps_what_was_used_last(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings, max_bytes=2 * _MIB)
    cache.hashes.put("first", "0" * 64)
    cache.close()
    for round_ in range(8):
        clock.now += 7200  # each round later than the last use is rewritten (hourly)
        cache = _open(tmp_path, clock, warnings, max_bytes=2 * _MIB)
        assert cache.hashes.get("first") == "0" * 64  # used every round: never the oldest
        for n in range(4):
            cache.metadata.put(_key(f"https://x/simple/p{round_}-{n}/"), bytes(200 * 1024))
        cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE_NAME) as conn:
        stored = conn.execute("SELECT total(size), count(*) FROM entries").fetchone()
    conn.close()
    assert stored[0] <= 2 * _MIB and stored[1] < 33
    assert (tmp_path / CACHE_FILE_NAME).stat().st_size <= 2 * _MIB  # the file too, not just its entries
    cache = _open(tmp_path, clock, warnings, max_bytes=2 * _MIB)
    assert cache.hashes.get("first") == "0" * 64
    assert cache.metadata.get(_key("https://x/simple/p0-0/")) is None  # the oldest went
    assert cache.metadata.get(_key("https://x/simple/p7-3/")) is not None
    cache.close()
    assert warnings == []


def test_two_open_caches_on_one_file_both_write(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    first, second = _open(tmp_path, clock, warnings), _open(tmp_path, clock, warnings)
    first.metadata.put(_key("https://x/simple/a/"), b"a")
    second.metadata.put(_key("https://x/simple/b/"), b"b")
    first.flush()
    second.flush()
    assert second.metadata.get(_key("https://x/simple/a/")) == b"a"
    first.close()
    second.close()
    assert warnings == []


def test_a_file_corrupted_while_in_use_turns_the_cache_off_and_is_rebuilt_next_time(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    for n in range(64):
        cache.metadata.put(_key(f"https://x/simple/p{n}/"), bytes(8192))
    cache.close()
    # Garbage over every page but the header: the file still opens, reading it fails.
    path = tmp_path / CACHE_FILE_NAME
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    broken = _open(tmp_path, clock, warnings)
    assert broken.metadata.get(_key("https://x/simple/p3/")) is None
    broken.metadata.put(_key("https://x/simple/new/"), b"new")
    broken.close()
    assert len(warnings) == 1 and "it will be rebuilt" in warnings[0]
    rebuilt = _open(tmp_path, clock, warnings)
    rebuilt.metadata.put(_key("https://x/simple/new/"), b"new")
    rebuilt.close()
    last = _open(tmp_path, clock, warnings)
    assert last.metadata.get(_key("https://x/simple/new/")) == b"new"
    last.close()
    assert len(warnings) == 1


def test_an_unusable_directory_means_no_cache_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the directory should be")
    warnings: list[str] = []
    cache = open_user_cache(tmp_path / "file" / "lockd", page_ttl=600, max_bytes=_MIB, warn=warnings.append)
    assert cache is None
    assert len(warnings) == 1 and "continuing without a cache" in warnings[0]


def test_entries_reach_the_file_during_the_run_and_close_leaves_no_writer(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    cache.metadata.put(_key("https://a.example/simple/numpy/"), b"Metadata-Version: 2.1\nName: numpy\n")
    # Another process (here: another connection) sees the entry before this run closes its cache.
    other = sqlite3.connect(tmp_path / CACHE_FILE_NAME)
    try:
        wait_until(
            lambda: other.execute("SELECT count(*) FROM entries").fetchone()[0] == 1,
            10.0,
            "the writer thread did not write the queued entry",
        )
    finally:
        other.close()
    cache.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "lockd-cache"]
    assert warnings == []


def test_a_page_names_its_body_hash_and_its_form_outlives_the_page_ttl(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    url = "https://x/simple/a/"
    page = PageBody(
        body=b'{"files": []}', content_type="application/vnd.pypi.simple.v1+json", url=url + "?moved"
    )
    cache = _open(tmp_path, clock, warnings)
    cache.pages.put(url, page)
    cache.pages.put_form(url, b"the form")
    head = PageHead(
        sha256=hashlib.sha256(page.body).hexdigest(), content_type=page.content_type, url=page.url
    )
    assert cache.pages.head(url) == head  # from what is queued
    cache.close()
    cache = _open(tmp_path, clock, warnings)
    assert cache.pages.head(url) == head  # from the file, without the body
    assert cache.pages.get(url) == page
    cache.close()
    # Past the TTL, or with pages not kept at all, the page is gone but its form is not: a form
    # stands only for the body it was made from, which the client must have fetched again.
    clock.now += 601
    for ttl, form in ((600.0, b"the form"), (0.0, b"another form")):
        cache = _open(tmp_path, clock, warnings, page_ttl=ttl)
        assert cache.pages.head(url) is None and cache.pages.get(url) is None
        assert cache.pages.get_form(url) == form
        cache.pages.put_form(url, b"another form")
        cache.close()
    assert warnings == []


def test_a_page_entry_naming_no_body_hash_is_served_but_has_no_head(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    url = "https://x/simple/a/"
    page = PageBody(body=b"{}", content_type="application/vnd.pypi.simple.v1+json", url=url)
    cache = _open(tmp_path, clock, warnings)
    cache.pages.put(url, page)
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE_NAME) as conn:
        conn.execute("UPDATE entries SET detail = ? WHERE kind = 'page'", (f"{page.content_type} {url}",))
    conn.close()
    cache = _open(tmp_path, clock, warnings)
    assert cache.pages.get(url) == page
    assert cache.pages.head(url) is None
    cache.close()


def test_a_damaged_form_in_the_file_is_a_miss_and_is_written_again(
    tmp_path: Path, fixture_index: WatchedIndex
) -> None:
    clock, warnings = _Clock(), _warnings()
    name = canonicalize_name("numpy")
    cache = _open(tmp_path, clock, warnings)
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=cache.pages) as client:
        fetched = client.project_page(fixture_index.pypi_url, name)
    cache.close()
    path = tmp_path / CACHE_FILE_NAME
    with sqlite3.connect(path) as conn:
        (form,) = conn.execute("SELECT value FROM entries WHERE kind = 'form'").fetchone()
        damaged = bytes(form[: len(form) // 2])
        conn.execute("UPDATE entries SET value = ? WHERE kind = 'form'", (damaged,))
    conn.close()
    cache = _open(tmp_path, clock, warnings)
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=cache.pages) as client:
        assert client.project_page(fixture_index.pypi_url, name) == fetched
        # The page was kept by its head alone (its form stood for its body): fetched again.
        assert client.stats.pages == 1 and client.stats.cache_hits == 0
    cache.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT length(value) FROM entries WHERE kind = 'page'").fetchone() == (0,)
    conn.close()
    # The form was written again: a later client builds the page from it, without fetching.
    cache = _open(tmp_path, clock, warnings)
    with IndexClient.from_options(ClientOptions(timeout=5.0), page_store=cache.pages) as client:
        assert client.project_page(fixture_index.pypi_url, name) == fetched
        assert client.stats.pages == 0 and client.stats.cache_hits == 1
    cache.close()
    assert warnings == []


def _plan(conn: sqlite3.Connection, statement: str, *parameters: object) -> str:
    return " | ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))


def test_a_write_reads_the_bytes_held_and_the_oldest_entries_from_an_index_not_from_the_values(
    tmp_path: Path,
) -> None:
    # `size` sits behind each entry's value in the table: read from there, every write walked
    # every value the file holds (0.2 s of CPU a write on a cache of 700 MB).
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    for n in range(50):
        cache.pages.put_form(f"https://x/simple/p{n}/", bytes(20_000))
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE_NAME) as conn:
        for plan in (_plan(conn, user_cache._TOTAL), _plan(conn, user_cache._EVICT, 1)):
            assert "USING COVERING INDEX entries_by_use_and_size" in plan, plan
            assert "SCAN entries |" not in f"{plan} |", plan
    conn.close()
    assert warnings == []


def test_a_cache_made_before_the_size_index_gets_it_when_opened_and_keeps_its_entries(
    tmp_path: Path,
) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    cache.metadata.put(_key("https://x/simple/a/"), b"kept")
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE_NAME, isolation_level=None) as conn:
        # As lockd before it made the file: the index on last use alone.
        conn.execute("DROP INDEX entries_by_use_and_size")
        conn.execute("CREATE INDEX entries_by_use ON entries (used_at)")
    conn.close()
    cache = _open(tmp_path, clock, warnings)
    assert cache.metadata.get(_key("https://x/simple/a/")) == b"kept"
    cache.close()
    with sqlite3.connect(tmp_path / CACHE_FILE_NAME) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "entries_by_use_and_size" in indexes and "entries_by_use" not in indexes
    assert warnings == []


def test_a_lower_bound_gives_the_evicted_entries_space_back_to_the_disk(tmp_path: Path) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings, max_bytes=64 * _MIB)
    for n in range(60):
        cache.pages.put_form(f"https://x/simple/p{n}/", bytes(200 * 1024))
    cache.close()
    assert (tmp_path / CACHE_FILE_NAME).stat().st_size > 10 * _MIB
    clock.now += 7200
    cache = _open(tmp_path, clock, warnings, max_bytes=2 * _MIB)  # the bound lowered
    cache.metadata.put(_key("https://x/simple/new/"), bytes(1024))
    cache.close()
    # Evicted down to the bound, and the file shrank with it (the last close checkpoints the log).
    assert (tmp_path / CACHE_FILE_NAME).stat().st_size <= 2 * _MIB + 256 * 1024
    cache = _open(tmp_path, clock, warnings, max_bytes=2 * _MIB)
    assert cache.metadata.get(_key("https://x/simple/new/")) == bytes(1024)
    cache.close()
    assert warnings == []


def test_a_cache_whose_index_cannot_be_added_now_is_read_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, warnings = _Clock(), _warnings()
    cache = _open(tmp_path, clock, warnings)
    cache.metadata.put(_key("https://x/simple/a/"), b"kept")
    cache.close()
    path = tmp_path / CACHE_FILE_NAME
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("DROP INDEX entries_by_use_and_size")
        conn.execute("CREATE INDEX entries_by_use ON entries (used_at)")
    conn.close()
    monkeypatch.setattr(cache_file, "_BUSY_SECONDS", 0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: the index must wait
    try:
        cache = _open(tmp_path, clock, warnings)
        assert cache.metadata.get(_key("https://x/simple/a/")) == b"kept"
        cache.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    cache = _open(tmp_path, clock, warnings)  # the next open adds it
    cache.close()
    with sqlite3.connect(path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "entries_by_use_and_size" in indexes
    assert warnings == []
