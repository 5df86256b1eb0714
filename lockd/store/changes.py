"""How a process learns that what an input or a name serves has changed, without a query per request.

Lock bodies and rendered files never change for a lock digest, but which revision an input
digest serves does (a refresh appends one, a promotion moves a name, garbage collection removes
an input). A process keeps those answers in memory (`FreshCache`) and drops them when a
`ChangeWatch` says the database changed:

- PostgreSQL: every transaction that appends a revision, moves or deletes a name or removes an
  input sends `NOTIFY lockd_changes` (`notify_change`), delivered when it commits. One listener
  thread per process holds its own connection (`LISTEN`), and proves it is alive with a
  `SELECT 1` every `_HEARTBEAT` seconds; a notification or a reconnection starts a new
  generation. Memory is trusted only while the last proof is under `MAX_STALENESS` old, so a
  listener that lost its connection (or is starved of CPU) sends every read to the database
  instead of serving an old revision.
- SQLite: `PRAGMA data_version` on a connection of the watch's own changes whenever any other
  connection (of this process or another) commits; reading it costs microseconds, not a round
  trip, so it is read at every lookup. Any commit starts a new generation.
- An in-memory SQLite database (tests, one connection) is never watched: nothing is kept.

Costs: a PostgreSQL replica pays one idle connection and five `SELECT 1` a second; a change
empties the whole memory of the process (changes are rare next to reads, and a generation
count is what keeps a read that raced a change from being kept).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Connection, Engine, event, text

__all__ = [
    "CHANNEL",
    "MAX_STALENESS",
    "ChangeWatch",
    "FreshCache",
    "NoWatch",
    "PostgresWatch",
    "SqliteWatch",
    "notify_change",
    "watch_for",
]

log = logging.getLogger("lockd.store.changes")

CHANNEL = "lockd_changes"
# The oldest a listener's last proof of life may be for memory to be trusted (seconds): a
# revision promoted more than this (plus a notification's delivery) ago is never served stale.
MAX_STALENESS = 0.5
_HEARTBEAT = 0.15
_RECONNECT_DELAY = 0.5

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_CHANGED = "lockd_changed"


def notify_change(conn: Connection) -> None:
    """Tell every process watching this database, when the caller's transaction commits, that
    what some input or name serves changed. On SQLite the commit itself is the signal."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))
        conn.info[_CHANGED] = True  # this process forgets at commit, before its own NOTIFY is back


class ChangeWatch(Protocol):
    def generation(self) -> int | None:
        """The current generation if memory may be trusted now, else None (ask the database)."""
        ...

    def close(self) -> None: ...


class NoWatch:
    """Nothing is watched, so nothing may be kept."""

    def generation(self) -> int | None:
        return None

    def close(self) -> None:
        return None


class SqliteWatch:
    """`PRAGMA data_version` of a connection of its own; thread-safe."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._version = -1
        self._generation = 0

    def generation(self) -> int | None:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = sqlite3.connect(self._path, check_same_thread=False, timeout=5)
                version = self._connection.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                self._generation += 1
                return None
            if version != self._version:
                self._version = version
                self._generation += 1
            return self._generation

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class PostgresWatch:
    """A `LISTEN` thread with its own connection, reconnecting until closed. A change committed
    through `engine` starts a new generation at once, so this process reads its own writes."""

    def __init__(self, conninfo: str, engine: Engine | None = None) -> None:
        self._conninfo = conninfo
        if engine is not None:
            event.listen(engine, "commit", self._committed)
            event.listen(engine, "rollback", _rolled_back)
        self._generation = 0
        self._proved_at = float("-inf")  # when the last heartbeat was sent, all changes before it seen
        self._stopped = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lockd-change-watch", daemon=True)

    def generation(self) -> int | None:
        if not self._started:
            self._start()
        if time.monotonic() - self._proved_at > MAX_STALENESS:
            return None
        return self._generation

    def _start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def _changed(self) -> None:
        self._generation += 1

    def _committed(self, conn: Connection) -> None:
        if conn.info.pop(_CHANGED, False):
            self._changed()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception as exc:  # any failure: distrust memory, reconnect
                self._proved_at = float("-inf")
                self._changed()
                log.warning("change listener lost its connection: %s", type(exc).__name__)
                self._stopped.wait(_RECONNECT_DELAY)

    def _listen(self) -> None:
        import psycopg  # noqa: PLC0415 (PostgreSQL deployments only)

        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._changed()  # whatever changed while nobody listened
            while not self._stopped.is_set():
                sent = time.monotonic()
                conn.execute("SELECT 1")
                # Notifications of transactions that committed before the heartbeat arrived
                # before its answer; they wait in psycopg's backlog until drained here.
                for _ in conn.notifies(timeout=0):
                    self._changed()
                self._proved_at = sent
                for _ in conn.notifies(timeout=_HEARTBEAT):
                    self._changed()

    def close(self) -> None:
        self._stopped.set()
        if self._started:
            self._thread.join(timeout=5)


def _rolled_back(conn: Connection) -> None:
    conn.info.pop(_CHANGED, None)


def watch_for(engine: Engine) -> ChangeWatch:
    """The watch that fits the engine's database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresWatch(url.set(drivername="postgresql").render_as_string(hide_password=False), engine)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        return SqliteWatch(database.removeprefix("file:"))
    return NoWatch()


class FreshCache(Generic[K, V]):
    """Answers that hold until the database changes, up to `max_entries`; thread-safe.

    Read with `generation = cache.generation()` before asking the database and `put(key, value,
    generation)` after: an answer read across a change is dropped rather than kept.
    """

    def __init__(self, watch: ChangeWatch, max_entries: int = 100_000) -> None:
        self._watch = watch
        self._max_entries = max_entries
        self._items: dict[K, V] = {}
        self._generation: int | None = None
        self._lock = threading.Lock()

    def generation(self) -> int | None:
        return self._watch.generation()

    def get(self, key: K) -> V | None:
        generation = self._watch.generation()
        if generation is None:
            return None
        with self._lock:
            if generation != self._generation:
                self._items.clear()
                self._generation = generation
                return None
            return self._items.get(key)

    def put(self, key: K, value: V, generation: int | None) -> None:
        if generation is None:
            return
        with self._lock:
            if generation != self._generation:
                if self._generation is not None and generation < self._generation:
                    return
                self._items.clear()
                self._generation = generation
            if len(self._items) >= self._max_entries:
                self._items.clear()  # rare: more hot inputs than entries; start over
            self._items[key] = value
        if self._watch.generation() != generation:
            with self._lock:
                self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
