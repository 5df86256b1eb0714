"""The CLI's persistent cache: core metadata by file identity, project pages with their TTL, file hashes.

`lockd lock` keeps what it learns from indexes in one SQLite file in the user's cache directory
(`Settings.user_cache_dir`), so the next run fetches no metadata it has read before. It trusts
the file no further than the server trusts its database cache (`lockd.store.caches`):

- metadata is stored under the exact identity of the file it was read from (`MetadataKey`:
  listing page, filename, claimed sha256, compared as text, never through a digest), and only
  after the client checked it against that file, so it never answers for another index's file;
- a page is served only while it is younger than the page TTL (wall clock, from its fetch);
  beside it is kept the form of its parse (`lockd.simple.page_form`), so a warm run reads
  neither the page's body nor its JSON: the page's entry names its body's sha256, and the form
  is used only for that body, by that parser (the form checks both, and its own integrity).
  A page with a form is kept without its body (a form that cannot be read means a fetch); a
  body kept is served only if it still hashes to the sha256 its entry names;
- a hash is stored under URL + size + ETag, as the server stores it.

Many CLI processes may share the directory: the file is in WAL mode (readers never wait for a
writer), writes are batched into `BEGIN IMMEDIATE` transactions that wait for each other
(busy timeout), and the schema is created under the same write lock. Writes happen on a writer
thread while the run goes on, not on the fetch thread whose entry crossed a threshold: there,
every fetch thread that queued an entry during that write waited for it too, and a cold 200-pin
run writes about 75 MB of pages. SQLite releases the GIL while it writes, so the writes overlap
with parsing. The file is bounded in
bytes: past the bound, the least recently used entries go. A file that is not lockd's cache
of this version (another version, another program, corruption) is discarded and rebuilt with
a warning; an error while the cache is in use turns it off for the rest of the run (and
discards it if it is corrupt). The cache can make a run faster, never make it fail.

What the index client's protocols see of the file (metadata, pages and forms, hashes, each by
its own key) is in `lockd.cli.cache_views`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from lockd.cli.cache_file import CACHE_FILE_NAME, ForeignFile, connect, discard, immediate, prepare, trim
from lockd.cli.cache_views import FORM, PAGE, Entry, HashView, MetadataView, PageView
from lockd.memory_cache import BoundedCache

__all__ = ["CACHE_FILE_NAME", "UserCache", "open_user_cache"]

_BACKLOG_BYTES = 64 * 1024 * 1024  # queued bytes past which a writer waits for the file (memory bound)
_TOUCH_AFTER = 3600.0  # an entry's last use is rewritten at most hourly: warm runs write nothing
_KEEP_FRACTION = 0.8  # eviction goes below the bound, so the next runs do not evict again at once
_MEMORY_BYTES = 64 * 1024 * 1024  # what this process has read, in front of the file

_UPSERT = """INSERT INTO entries (kind, key, value, detail, stored_at, used_at, size)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, detail = excluded.detail,
        stored_at = excluded.stored_at, used_at = excluded.used_at, size = excluded.size"""

_TOTAL = "SELECT total(size) FROM entries"  # read from `cache_file`'s index by use and size, as `_EVICT`

# Keeps the most recently used entries up to the given bytes and deletes the rest.
_EVICT = """DELETE FROM entries WHERE id IN (
    SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY used_at DESC, id DESC) AS newer FROM entries)
    WHERE newer > ?)"""

_Key = tuple[str, str]  # (kind, key)


class UserCache:
    """One cache file, opened by `open_user_cache`. Thread-safe; `close` writes what is queued."""

    def __init__(
        self,
        path: Path,
        *,
        page_ttl: float,
        max_bytes: int,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._page_ttl = page_ttl
        self._max_bytes = max_bytes
        self._warn = warn
        self._clock = clock
        # Two connections: reads on the fetch threads never queue behind a batch being written.
        self._reader = connect(path)
        self._writer = connect(path)
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending: dict[_Key, Entry] = {}
        self._pending_bytes = 0
        self._touched: set[_Key] = set()
        self._recent: BoundedCache[_Key, Entry] = BoundedCache(_MEMORY_BYTES, sizeof=lambda e: len(e[0]))
        self._failed = False
        self._corrupt = False
        self._wake = threading.Condition(self._state_lock)
        self._closing = False
        self._writer_thread: threading.Thread | None = None
        self.metadata = MetadataView(self)
        self.pages = PageView(self)
        self.hashes = HashView(self)

    # -- reads and writes by (kind, key) ---------------------------------------------------

    def get(self, kind: str, key: str) -> Entry | None:
        entry = self._held(kind, key)
        if entry is not None or self._failed:
            return entry
        row = self._select("value, detail, stored_at", kind, key)
        if row is None:
            return None
        entry = (bytes(row[0]), str(row[1]), float(row[2]))
        if kind not in (PAGE, FORM):  # the client keeps the parsed page; its bytes need not stay too
            self._recent.put((kind, key), entry)
        return entry

    def head(self, kind: str, key: str) -> tuple[str, float] | None:
        """An entry's detail and time of storing, without reading its value."""
        entry = self._held(kind, key)
        if entry is not None:
            return entry[1], entry[2]
        row = None if self._failed else self._select("detail, stored_at", kind, key)
        return None if row is None else (str(row[0]), float(row[1]))

    def _held(self, kind: str, key: str) -> Entry | None:
        with self._state_lock:
            entry = self._pending.get((kind, key))
        return self._recent.get((kind, key)) if entry is None else entry

    def _select(self, columns: str, kind: str, key: str) -> tuple[Any, ...] | None:
        """The entry's `columns` from the file, noting its use; None if absent or unreadable."""
        try:
            with self._read_lock:
                row = self._reader.execute(
                    f"SELECT {columns}, used_at FROM entries WHERE kind = ? AND key = ?", (kind, key)
                ).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
            return None
        if row is None:
            return None
        if self._clock() - float(row[-1]) > _TOUCH_AFTER:
            with self._state_lock:
                self._touched.add((kind, key))
        return tuple(row[:-1])

    def put(self, kind: str, key: str, value: bytes, detail: str = "") -> None:
        if self._failed or len(value) > self._max_bytes // 4:
            return  # one huge entry would evict everything else
        with self._state_lock:
            self._pending[(kind, key)] = (value, detail, self._clock())
            self._pending_bytes += len(value)
            behind = self._pending_bytes >= _BACKLOG_BYTES
            if self._writer_thread is None and not self._closing:
                self._writer_thread = threading.Thread(
                    target=self._write_behind, name="lockd-cache", daemon=True
                )
                self._writer_thread.start()
            self._wake.notify()
        if behind:
            self.flush()

    def _write_behind(self) -> None:
        """Writes what is queued as it comes, until `close`."""
        while True:
            with self._state_lock:
                while not (self._pending or self._touched or self._closing or self._failed):
                    self._wake.wait()
                if self._closing or self._failed:
                    return
            self.flush()

    def page_is_fresh(self, stored_at: float) -> bool:
        return 0.0 <= self._clock() - stored_at < self._page_ttl

    @property
    def keeps_pages(self) -> bool:
        return self._page_ttl > 0

    # -- writing, evicting, closing --------------------------------------------------------

    def flush(self) -> None:
        """Writes queued entries and last uses in one transaction, then evicts past the bound."""
        with self._write_lock:
            with self._state_lock:
                batch = dict(self._pending)
                touched = set(self._touched)
            if self._failed or not (batch or touched):
                return
            now = self._clock()
            rows = [
                (kind, key, value, detail, stored_at, now, len(value) + len(key) + len(detail))
                for (kind, key), (value, detail, stored_at) in sorted(batch.items())
            ]
            try:
                self._write(rows, [(now, kind, key) for kind, key in sorted(touched)])
            except sqlite3.Error as exc:
                self._fail(exc)
                return
            with self._state_lock:
                for found, entry in batch.items():
                    if self._pending.get(found) is entry:  # not replaced while it was written
                        del self._pending[found]
                self._pending_bytes = sum(len(entry[0]) for entry in self._pending.values())
                self._touched -= touched

    def _write(
        self, rows: list[tuple[str, str, bytes, str, float, float, int]], uses: list[tuple[float, str, str]]
    ) -> None:
        conn = self._writer
        with immediate(conn):
            conn.executemany(_UPSERT, rows)
            conn.executemany("UPDATE entries SET used_at = ? WHERE kind = ? AND key = ?", uses)
            total = float(conn.execute(_TOTAL).fetchone()[0])
            evicted = total > self._max_bytes
            if evicted:
                conn.execute(_EVICT, (int(self._max_bytes * _KEEP_FRACTION),))
        if evicted:
            # If another process holds the lock, a later eviction trims it.
            with suppress(sqlite3.OperationalError):
                trim(conn, self._max_bytes)

    def close(self) -> None:
        """Writes what is queued and closes the file; discards it if it turned out corrupt."""
        with self._state_lock:
            self._closing = True
            self._wake.notify()
            writer = self._writer_thread
        if writer is not None:
            writer.join()
        self.flush()
        for conn in (self._reader, self._writer):
            # Closing cannot lose anything: every write was committed or rolled back.
            with suppress(sqlite3.Error):
                conn.close()
        if self._corrupt:
            discard(self.path)

    def _fail(self, exc: sqlite3.Error) -> None:
        with self._state_lock:
            if self._failed:
                return
            self._failed = True
            self._pending.clear()
        # Locked past the busy timeout, read-only, disk full: the file is fine, this run skips it.
        self._corrupt = not isinstance(exc, sqlite3.OperationalError)
        then = "it will be rebuilt" if self._corrupt else "continuing without it"
        self._warn(f"the cache {self.path} failed ({exc}); {then}")


# -- opening -----------------------------------------------------------------------------------


def open_user_cache(
    directory: Path,
    *,
    page_ttl: float,
    max_bytes: int,
    warn: Callable[[str], None],
    clock: Callable[[], float] = time.time,
) -> UserCache | None:
    """The cache in `directory`, created if missing, rebuilt if unusable; None (warned) if it cannot be had."""
    path = directory / CACHE_FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        warn(f"cannot create the cache directory {directory} ({exc.strerror}); continuing without a cache")
        return None
    for _attempt in range(2):
        try:
            prepare(path)
            return UserCache(path, page_ttl=page_ttl, max_bytes=max_bytes, warn=warn, clock=clock)
        except ForeignFile as exc:
            warn(f"the cache {path} {exc}; rebuilding it")
        except sqlite3.OperationalError as exc:
            warn(f"cannot open the cache {path} ({exc}); continuing without it")
            return None
        except sqlite3.DatabaseError as exc:
            warn(f"the cache {path} is unreadable ({exc}); rebuilding it")
        try:
            discard(path)
        except OSError as exc:
            warn(f"cannot remove the cache {path} ({exc.strerror}); continuing without it")
            return None
    return None
