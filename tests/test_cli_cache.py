"""`lockd lock`'s persistent cache, as a user of the command sees it: the second run asks the
index for no metadata, `--no-cache` asks again, a broken cache file is rebuilt, concurrent runs
share one directory, the directory follows XDG, and one index's metadata never answers for
another's file. Runs go through `lockd.cli.main` in this process (the fixture index counts what
each asked for), except the concurrent ones, which are real processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd import simple
from lockd.cli import main
from lockd.cli.user_cache import CACHE_FILE_NAME
from lockd.simple import ProjectPage
from tests.support import ROOT

_REQUIREMENTS = "torch==2.5.1\nnumpy\n"
_TARGET = ("--platform", "linux_x86_64", "--python", "3.11", "--cuda", "cu124")


def _fetched_metadata(index: WatchedIndex) -> int:
    """Requests that read core metadata: PEP 658 files and ranges into wheels."""
    requests = index.counters().requests
    return requests.get("metadata", 0) + requests.get("range", 0) + requests.get("file", 0)


def _pinned_files_read(index: WatchedIndex, lock: str) -> list[str]:
    """Files of the lock's pins whose metadata was read from the index since its counters reset.

    The resolver also prefetches metadata of versions it may never pin (which ones depends on
    timing), so a warm run is judged by the files the lock needed.
    """
    pins = set()
    for line in lock.splitlines():
        name, sep, version = line.split(" ", 1)[0].partition("==")
        if sep:
            pins.add(f"{name.replace('-', '_')}-{version}-".lower())
    return [
        record.path
        for record in index.requests_log()
        if record.kind in ("metadata", "range", "file")
        and any(record.path.rsplit("/", 1)[-1].lower().startswith(pin) for pin in pins)
    ]


def _lock(
    index: WatchedIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[str, str]:
    requirements = tmp_path / "requirements.in"
    requirements.write_text(_REQUIREMENTS)
    code = main(
        [
            "lock",
            str(requirements),
            *_TARGET,
            "--index-url",
            index.pypi_url,
            "--pytorch-index-url",
            index.pytorch_base,
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_a_second_lock_fetches_no_metadata_and_no_cache_fetches_it_again(
    mutable_index: ControlledIndex,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = ("--cache-dir", str(tmp_path / "cache"))
    first, _ = _lock(mutable_index, tmp_path, capsys, *cache)
    cold = _fetched_metadata(mutable_index)
    assert _pinned_files_read(mutable_index, first)
    mutable_index.reset_counters()
    # Within the page TTL no page is asked for, and no metadata the lock needed.
    again, err = _lock(mutable_index, tmp_path, capsys, *cache)
    assert again == first and err == ""
    assert mutable_index.counters().requests.get("page", 0) == 0
    assert _pinned_files_read(mutable_index, first) == []
    assert _fetched_metadata(mutable_index) * 4 < cold
    # Pages refetched (uv's footing on an index without caching headers), metadata from the cache.
    monkeypatch.setenv("LOCKD_PAGE_TTL", "0")
    mutable_index.reset_counters()
    warm, _ = _lock(mutable_index, tmp_path, capsys, *cache)
    assert warm == first
    assert mutable_index.counters().requests.get("page", 0) > 0
    assert _pinned_files_read(mutable_index, first) == []
    mutable_index.reset_counters()
    uncached, _ = _lock(mutable_index, tmp_path, capsys, *cache, "--no-cache")
    assert uncached == first
    assert _pinned_files_read(mutable_index, first)


def test_a_warm_lock_builds_stored_pages_from_their_forms_and_parses_only_changed_bytes(
    mutable_index: ControlledIndex,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every page parsed in this process, where the parser is watched: with its cache, `lockd lock`
    # sends pages from 16 KiB to the page child, and numpy's fixture page is bigger.
    monkeypatch.setenv("LOCKD_PAGE_WORKER_FROM", "0")
    cache = ("--cache-dir", str(tmp_path / "cache"))
    first, _ = _lock(mutable_index, tmp_path, capsys, *cache)
    # Watches the JSON parser where the client's pages look it up when they parse; it still parses.
    parsed: list[str] = []
    parse = simple.parse_json_page

    def parse_json_page(
        body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
    ) -> ProjectPage:
        parsed.append(project)
        return parse(body, page_url, project, max_files=max_files)

    monkeypatch.setattr(simple, "parse_json_page", parse_json_page)
    mutable_index.reset_counters()
    again, _ = _lock(mutable_index, tmp_path, capsys, *cache)
    assert again == first
    assert mutable_index.counters().requests.get("page", 0) == 0
    assert parsed == []  # every stored page came from its form
    # Pages fetched again, byte for byte the same: their forms still stand.
    monkeypatch.setenv("LOCKD_PAGE_TTL", "0")
    mutable_index.reset_counters()
    refetched, _ = _lock(mutable_index, tmp_path, capsys, *cache)
    assert refetched == first
    assert mutable_index.counters().requests.get("page", 0) > 0
    assert parsed == []
    # One page changed: that page, and only it, is parsed again.
    oldest = min(mutable_index.files("numpy"), key=lambda artifact: Version(artifact.version))
    mutable_index.yank(oldest.filename, "changed")
    _lock(mutable_index, tmp_path, capsys, *cache)
    assert parsed == ["numpy"]


def test_the_cache_lives_in_xdg_cache_home_unless_lockd_cache_dir_says_otherwise(
    fixture_index: WatchedIndex,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    _lock(fixture_index, tmp_path, capsys)
    assert (tmp_path / "xdg" / "lockd" / CACHE_FILE_NAME).is_file()
    monkeypatch.setenv("LOCKD_CACHE_DIR", str(tmp_path / "configured"))
    _lock(fixture_index, tmp_path, capsys)
    assert (tmp_path / "configured" / CACHE_FILE_NAME).is_file()
    _lock(fixture_index, tmp_path, capsys, "--cache-dir", str(tmp_path / "flag"))
    assert (tmp_path / "flag" / CACHE_FILE_NAME).is_file()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-xdg"))
    _lock(fixture_index, tmp_path, capsys, "--no-cache")
    assert not (tmp_path / "other-xdg").exists()


def test_a_corrupt_or_foreign_cache_file_is_rebuilt_with_a_warning(
    mutable_index: ControlledIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE_NAME).write_bytes(b"not a database, whatever it is " * 200)
    first, err = _lock(mutable_index, tmp_path, capsys, "--cache-dir", str(cache))
    assert "warning: " in err and "rebuilding it" in err
    mutable_index.reset_counters()
    again, err = _lock(mutable_index, tmp_path, capsys, "--cache-dir", str(cache))
    assert again == first and err == ""
    assert mutable_index.counters().requests.get("page", 0) == 0
    assert _pinned_files_read(mutable_index, first) == []
    # Another version's (or another program's) SQLite file under this name is not read either.
    with sqlite3.connect(cache / CACHE_FILE_NAME) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    after, err = _lock(mutable_index, tmp_path, capsys, "--cache-dir", str(cache))
    assert after == first
    assert "is not lockd's cache of this version" in err
    assert _fetched_metadata(mutable_index) > 0


def test_one_index_metadata_never_answers_for_another_index_file(
    fixture_index: WatchedIndex,
    mutable_index: ControlledIndex,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Both indexes serve the same catalog: same filenames, same claimed sha256, other URLs.
    cache = ("--cache-dir", str(tmp_path / "cache"))
    _lock(fixture_index, tmp_path, capsys, *cache)
    _lock(mutable_index, tmp_path, capsys, *cache)
    assert _fetched_metadata(mutable_index) > 0
    read_from_b = {name for name, n in mutable_index.counters().range_files.items() if n}
    assert any(name.startswith("numpy-") for name in read_from_b)


def test_concurrent_lock_processes_share_one_cache_directory(
    fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text(_REQUIREMENTS)
    command = [
        sys.executable,
        "-m",
        "lockd",
        "lock",
        "requirements.in",
        *_TARGET,
        "--index-url",
        fixture_index.pypi_url,
        "--pytorch-index-url",
        fixture_index.pytorch_base,
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert err == b""  # no warning: neither run lost the cache to the other
    assert outputs[0][0] == outputs[1][0]
    with sqlite3.connect(tmp_path / "cache" / CACHE_FILE_NAME) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM entries GROUP BY kind").fetchall())
    conn.close()
    assert kinds.get("metadata", 0) > 0 and kinds.get("page", 0) > 0
