"""Database-backed metadata and hash caches, shared by every replica on one database.

They implement the `lockd.index` cache protocols structurally (`get`/`put`), keyed by
things that never change: a file's identity on its index (`MetadataKey`: listing page,
filename, claimed sha256) for METADATA, URL + size + ETag for a hash.
A small in-process `BoundedCache` in front saves a round trip for the hot entries of a resolution.
A cache entry is true regardless of what the resolution that fetched it goes on to do.

Metadata writes are deferred: `put` keeps the entry in memory and queues it, and `flush`
writes the queue in one transaction, which the service calls once a resolution is done.
Written one by one, the sixteen fetch threads of a cold resolution queued for SQLite's single
write lock, and the busy handler's sleeps (1, 2, 5, 10… ms) landed on the resolution's
critical path: a third of its time on a 60-package lock.

A metadata lookup that misses memory is one prepared statement on an autocommit connection
(`read`): no BEGIN and COMMIT around it, and no statement built per call. On a cold resolution
every file's first lookup misses; measured (SQLite, 48 threads, 3,000 lookups) 250-380 → 145 µs
of CPU each. On SQLite it skips SQLAlchemy's statement machinery too (`sqlite_row`: 18-22
against 70-108 µs, one thread). On PostgreSQL psycopg's own work is most of a lookup (done the
same way, 155 against 210 µs of CPU), so it keeps SQLAlchemy's path.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from lockd.index.caches import MetadataKey
from lockd.memory_cache import BoundedCache
from lockd.store import schema
from lockd.store.database import read, sqlite_row, transaction
from lockd.store.queries import insert_if_absent

__all__ = ["DatabaseHashCache", "DatabaseMetadataCache"]

_MEMORY_METADATA_BYTES = 32 * 1024 * 1024
_MEMORY_HASHES = 2048
_FLUSH_AT = 256  # queued metadata entries that force a write, whoever forgets to flush
_METADATA_QUERY = select(schema.dist_metadata.c.metadata).where(
    schema.dist_metadata.c.key == bindparam("key"),
    schema.dist_metadata.c.page_url == bindparam("page_url"),
    schema.dist_metadata.c.filename == bindparam("filename"),
    schema.dist_metadata.c.sha256 == bindparam("sha256"),
)


class DatabaseMetadataCache:
    """Raw METADATA by the identity of the file it came from (table `dist_metadata`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # On SQLite the same statement in SQLite's own text, for `sqlite_row`: compiled once, its
        # `?` parameters in the order the statement names them (key, page URL, filename, sha256).
        self._sqlite_query = (
            str(_METADATA_QUERY.compile(dialect=engine.dialect)) if engine.dialect.name == "sqlite" else None
        )
        self._recent: BoundedCache[MetadataKey, bytes] = BoundedCache(_MEMORY_METADATA_BYTES, sizeof=len)
        self._pending: dict[MetadataKey, bytes] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: MetadataKey) -> bytes | None:
        cached = self._recent.get(key)
        if cached is None:
            with self._pending_lock:
                cached = self._pending.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        if self._sqlite_query is not None:
            row = sqlite_row(
                self._engine, self._sqlite_query, (key.digest, key.page_url, key.filename, key.sha256)
            )
        else:
            values = {
                "key": key.digest,
                "page_url": key.page_url,
                "filename": key.filename,
                "sha256": key.sha256,
            }
            row = read(self._engine, lambda conn: conn.execute(_METADATA_QUERY, values).first())
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        value = bytes(row[0])
        self._recent.put(key, value)
        return value

    def put(self, key: MetadataKey, metadata: bytes) -> None:
        """Remembers the entry now; it reaches the database at the next `flush`."""
        self._recent.put(key, metadata)
        with self._pending_lock:
            self._pending[key] = metadata
            due = len(self._pending) >= _FLUSH_AT
        if due:
            self.flush()

    def flush(self) -> None:
        """Writes every queued entry in one transaction; entries stay queued if that fails."""
        with self._flush_lock:
            with self._pending_lock:
                batch = dict(self._pending)
            if not batch:
                return
            rows = sorted(
                (
                    {
                        "key": key.digest,
                        "page_url": key.page_url,
                        "filename": key.filename,
                        "sha256": key.sha256,
                        "metadata": metadata,
                    }
                    for key, metadata in batch.items()
                ),
                key=lambda row: str(row["key"]),
            )
            with transaction(self._engine, write=True) as conn:
                # One executemany, not a statement per row: ~30 -> ~5 ms of CPU for 205 rows,
                # on the resolution's critical path (the service flushes before answering).
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                conn.execute(dialect.insert(schema.dist_metadata).on_conflict_do_nothing(), rows)
            with self._pending_lock:
                for key in batch:
                    self._pending.pop(key, None)


class DatabaseHashCache:
    """sha256 of files whose index gave none, by URL + size + ETag (table `file_hashes`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._recent: BoundedCache[str, str] = BoundedCache(_MEMORY_HASHES)

    def get(self, key: str) -> str | None:
        cached = self._recent.get(key)
        if cached is not None:
            return cached
        table = schema.file_hashes
        with transaction(self._engine, write=False) as conn:
            row = conn.execute(select(table.c.sha256).where(table.c.key == key)).first()
        if row is None:
            return None
        self._recent.put(key, row.sha256)
        return str(row.sha256)

    def put(self, key: str, sha256: str) -> None:
        self._recent.put(key, sha256)
        with transaction(self._engine, write=True) as conn:
            insert_if_absent(conn, schema.file_hashes, {"key": key, "sha256": sha256})
