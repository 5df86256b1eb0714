"""The CLI cache's SQLite file: its schema and version, opening it, and giving its freed pages back.

`lockd.cli.user_cache` reads and writes entries in it; this is what holds for the file whoever
uses it: a file of another version or program is told apart (`ForeignFile`), the schema is made
under the write lock, so of several processes starting at once exactly one creates it, and a
file made by an earlier lockd of this version gets the indexes this one reads by.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["CACHE_FILE_NAME", "ForeignFile", "connect", "discard", "immediate", "prepare", "trim"]

# 2: a page entry's detail ends with its body's sha256, which lockd of version 1, splitting the
# detail at its first space, would read as part of the page's URL.
_SCHEMA_VERSION = 2
_APPLICATION_ID = 0x6C6F636B  # "lock": tells lockd's cache from any other SQLite file
CACHE_FILE_NAME = f"index-cache-v{_SCHEMA_VERSION}.sqlite3"  # another version keeps its own file

_BUSY_SECONDS = 10.0  # how long a write waits for another process's write

# Entries by last use, with their sizes: the bytes held (read at every write) and the eviction's
# running sum come from this index alone. Read from the table, `size` sits behind each entry's
# value, so summing it walked every value's overflow pages: 0.2 s of CPU a sum on a cache of 700
# MB, and a cold pypi-200's writes took 0.40-0.42 s there against 0.16-0.22 s from the index
# (`python -m bench.cli_cpu --cache-from`; `tests/test_user_cache.py` holds the query plans). A
# cache made before it has the index on `used_at` alone, replaced when it is opened.
_SIZE_INDEX = "entries_by_use_and_size"
_BY_USE = f"CREATE INDEX IF NOT EXISTS {_SIZE_INDEX} ON entries (used_at, size)"
_OLD_BY_USE = "entries_by_use"

_SCHEMA = (
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        detail TEXT NOT NULL,
        stored_at REAL NOT NULL,
        used_at REAL NOT NULL,
        size INTEGER NOT NULL,
        UNIQUE (kind, key)
    )""",
    _BY_USE,
)


class ForeignFile(Exception):
    """The file is an SQLite database, but not lockd's cache of this version."""


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit (isolation_level None): transactions are explicit BEGIN IMMEDIATEs.
    conn = sqlite3.connect(path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash may lose the last writes, never corrupt
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction (`BEGIN IMMEDIATE`: it waits for other writers up front, within the busy
    timeout), committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")  # a commit that fails (a full disk) is rolled back too
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prepare(path: Path) -> None:
    """Checks the file is this version's cache, creating the schema in an empty file."""
    conn = connect(path)
    try:
        if _stamp(conn) != (_APPLICATION_ID, _SCHEMA_VERSION):
            _create(conn)
        elif not _has_size_index(conn):
            # Locked past the busy timeout, or a read-only file: read as it is; a later open adds it.
            with suppress(sqlite3.OperationalError):
                _add_size_index(conn)
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def trim(conn: sqlite3.Connection, max_bytes: int) -> None:
    """Gives freed pages back to the disk until the file holds no more than `max_bytes`.

    Only so many: the freed pages left inside the file take the next runs' writes, while giving
    back all of them moves every page that lies past them (a cache of 700 MB evicting 150 MB: 0.9 s
    more for its run). So a file stays at its bound, and shrinks when the bound is lowered.
    """
    page_size, pages, free = (
        int(conn.execute(f"PRAGMA {name}").fetchone()[0])
        for name in ("page_size", "page_count", "freelist_count")
    )
    excess = min(free, -(-(pages * page_size - max_bytes) // page_size))
    if excess > 0:
        # As a script: `execute` steps the pragma once, which gives back one page.
        conn.executescript(f"PRAGMA incremental_vacuum({excess});")


def _has_size_index(conn: sqlite3.Connection) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (_SIZE_INDEX,))
    return found.fetchone() is not None


def _add_size_index(conn: sqlite3.Connection) -> None:
    # Under the write lock, as `_create`: of several processes opening the cache, one builds it.
    with immediate(conn):
        conn.execute(_BY_USE)
        conn.execute(f"DROP INDEX IF EXISTS {_OLD_BY_USE}")


def _stamp(conn: sqlite3.Connection) -> tuple[int, int]:
    application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    return application_id, int(conn.execute("PRAGMA user_version").fetchone()[0])


def _create(conn: sqlite3.Connection) -> None:
    # Under the write lock, so of several processes starting at once exactly one creates it.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect before the first table
    with immediate(conn):
        stamp = _stamp(conn)
        if stamp == (_APPLICATION_ID, _SCHEMA_VERSION):
            return  # another process made it meanwhile
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if stamp != (0, 0) or tables:
            raise ForeignFile(
                f"is not lockd's cache of this version (application id {stamp[0]:#x}, version {stamp[1]})"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def discard(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
