"""Store queries on SQLite and PostgreSQL: constraints, leases, caches, listings."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from lockd.errors import StoreUnavailable
from lockd.index import MetadataKey
from lockd.inputs import canonical_json
from lockd.store import DatabaseMetadataCache, LockFileRecord, leases, open_engine, queries, transaction

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INPUT = "1" * 64
LOCK = "2" * 64


def _canonical(platform: str = "linux_x86_64") -> bytes:
    return canonical_json(
        {"target": {"platform": platform, "python": "3.11.0", "cuda": None}, "requirements": ["numpy"]}
    )


def test_digest_check_constraints(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        for bad in ("A" * 64, "1" * 63, "g" * 64):
            with pytest.raises(StoreUnavailable), transaction(engine, write=True) as conn:
                queries.put_input(conn, bad, _canonical(), NOW)
        with transaction(engine, write=False) as conn:
            assert queries.get_input(conn, "A" * 64) is None
    finally:
        engine.dispose()


def test_lock_revision_round_trip_and_nothing_partial(database_url: str) -> None:
    engine = open_engine(database_url)
    files = [LockFileRecord(LOCK, "requirements.txt", "3" * 64, "text/plain", b"numpy==2.2.6\n")]
    try:
        with pytest.raises(RuntimeError), transaction(engine, write=True) as conn:
            queries.put_input(conn, INPUT, _canonical(), NOW)
            queries.put_lock(
                conn,
                digest=LOCK,
                input_digest=INPUT,
                canonical=b"{}",
                packages={"numpy": "2.2.6"},
                files=files,
                now=NOW,
            )
            raise RuntimeError("crash before the revision")
        with transaction(engine, write=False) as conn:
            assert queries.get_input(conn, INPUT) is None
            assert queries.get_lock_file(conn, LOCK, "requirements.txt") is None

        with transaction(engine, write=True) as conn:
            queries.put_input(conn, INPUT, _canonical(), NOW)
            queries.put_lock(
                conn,
                digest=LOCK,
                input_digest=INPUT,
                canonical=b"{}",
                packages={"numpy": "2.2.6"},
                files=files,
                now=NOW,
            )
            queries.put_revision(conn, input_digest=INPUT, n=1, lock_digest=LOCK, reason="created", now=NOW)
        with transaction(engine, write=False) as conn:
            record = queries.get_lock_file(conn, LOCK, "requirements.txt")
            assert record is not None and record.content == b"numpy==2.2.6\n"
            current = queries.current_revision(conn, INPUT)
            assert current is not None and current.n == 1 and current.created_at == NOW
            assert [s.input_digest for s in queries.list_locks(conn, limit=10, package="numpy")] == [INPUT]
            assert queries.list_locks(conn, limit=10, platform="macos_arm64") == []
            assert queries.list_locks(conn, limit=10, cuda="") != []
        with pytest.raises(StoreUnavailable), transaction(engine, write=True) as conn:
            queries.put_revision(conn, input_digest=INPUT, n=1, lock_digest=LOCK, reason="again", now=NOW)
    finally:
        engine.dispose()


def test_leases(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        with transaction(engine, write=True) as conn:
            assert leases.acquire(conn, "resolution", INPUT, "a", now=time.time(), ttl=60)
            assert not leases.acquire(conn, "resolution", INPUT, "b", now=time.time(), ttl=60)
            leases.fail(
                conn,
                "resolution",
                INPUT,
                "a",
                {"code": "unknown-project", "message": "x"},
                expires_at=time.time() + 10,
            )
        with transaction(engine, write=True) as conn:
            lease = leases.get(conn, "resolution", INPUT)
            assert (
                lease is not None
                and lease.state == "failed"
                and lease.error == {"code": "unknown-project", "message": "x"}
            )
            assert leases.acquire(
                conn, "resolution", INPUT, "b", now=time.time(), ttl=60
            )  # a failed lease is free
            assert not leases.acquire(conn, "resolution", INPUT, "c", now=time.time(), ttl=60)
            assert leases.acquire(
                conn, "resolution", INPUT, "c", now=time.time() + 61, ttl=60
            )  # an expired one too
            leases.release(conn, "resolution", INPUT, "b")  # not the holder any more: no effect
            assert leases.get(conn, "resolution", INPUT) is not None
            leases.release(conn, "resolution", INPUT, "c")
            assert leases.get(conn, "resolution", INPUT) is None
    finally:
        engine.dispose()


PAGE = "https://pypi.example/simple/x/"
FILENAME = "x-1.0-py3-none-any.whl"


def _key(sha256: str) -> MetadataKey:
    return MetadataKey(page_url=PAGE, filename=FILENAME, sha256=sha256)


def test_a_metadata_lookup_is_one_statement_without_a_transaction(database_url: str) -> None:
    # Every file's first lookup of a cold resolution misses memory: BEGIN and COMMIT around its
    # one SELECT were two more statements (round trips on PostgreSQL) per file. On SQLite it goes
    # straight to the driver connection (`sqlite_row`): SQLAlchemy's statement machinery cost ten
    # times the lookup. Its failures are still StoreUnavailable.
    engine = open_engine(database_url)
    try:
        writer = DatabaseMetadataCache(engine)
        writer.put(_key("4" * 64), b"Metadata-Version: 2.1\nName: x\n")
        writer.flush()
        commits: list[object] = []
        statements: list[str] = []
        event.listen(engine, "commit", commits.append)
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        reader = DatabaseMetadataCache(engine)
        assert reader.get(_key("4" * 64)) == b"Metadata-Version: 2.1\nName: x\n"
        assert reader.get(_key("5" * 64)) is None
        assert commits == []
        sqlite = engine.dialect.name == "sqlite"
        assert (statements == []) is sqlite  # PostgreSQL's lookups go through SQLAlchemy
        with transaction(engine, write=True) as conn:
            conn.exec_driver_sql("ALTER TABLE dist_metadata RENAME TO dist_metadata_gone")
        with pytest.raises(StoreUnavailable, match="the database failed"):
            DatabaseMetadataCache(engine).get(_key("4" * 64))
    finally:
        engine.dispose()


def test_metadata_is_flushed_in_one_statement(database_url: str) -> None:
    # The service flushes before it answers: a statement per entry (205 on pypi-200) was
    # on every cold resolution's critical path.
    engine = open_engine(database_url)
    try:
        cache = DatabaseMetadataCache(engine)
        for n in range(40):
            cache.put(_key(f"{n:064x}"), b"Metadata-Version: 2.1\nName: x\n")
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        cache.flush()
        assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 1, statements
        cache.put(_key(f"{3:064x}"), b"Metadata-Version: 2.1\nName: x\n")
        cache.put(_key(f"{99:064x}"), b"Metadata-Version: 2.1\nName: x\n")
        cache.flush()  # one already there: kept as it is, the other written
        again = DatabaseMetadataCache(engine)
        assert all(again.get(_key(f"{n:064x}")) is not None for n in [*range(40), 99])
    finally:
        engine.dispose()


def test_metadata_cache_is_shared_through_the_database(database_url: str) -> None:
    first, second = open_engine(database_url), open_engine(database_url)
    try:
        writer = DatabaseMetadataCache(first)
        writer.put(_key("4" * 64), b"Metadata-Version: 2.1\nName: x\n")
        assert writer.get(_key("4" * 64)) == b"Metadata-Version: 2.1\nName: x\n"  # at once, before any flush
        writer.flush()
        again = DatabaseMetadataCache(first)
        again.put(_key("4" * 64), b"Metadata-Version: 2.1\nName: x\n")
        again.flush()  # idempotent
        other_replica = DatabaseMetadataCache(second)
        assert other_replica.get(_key("4" * 64)) == b"Metadata-Version: 2.1\nName: x\n"
        assert other_replica.get(_key("5" * 64)) is None
        assert (other_replica.hits, other_replica.misses) == (1, 1)
        # a resolution's entries are written in one transaction when the service flushes
        for n in range(3):
            writer.put(_key(f"{n}" * 64), b"Metadata-Version: 2.1\nName: y\n")
        assert other_replica.get(_key("0" * 64)) is None
        writer.flush()
        assert [other_replica.get(_key(f"{n}" * 64)) for n in range(3)] == [
            b"Metadata-Version: 2.1\nName: y\n"
        ] * 3
        # the same claimed hash on another index, or for another file, is another file
        elsewhere = MetadataKey(
            page_url="https://other.example/simple/x/", filename=FILENAME, sha256="4" * 64
        )
        renamed = MetadataKey(page_url=PAGE, filename="y-1.0-py3-none-any.whl", sha256="4" * 64)
        assert other_replica.get(elsewhere) is None and other_replica.get(renamed) is None
    finally:
        first.dispose()
        second.dispose()
