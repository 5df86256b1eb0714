"""`lockd.store.changes`: a commit that changes what an input serves reaches every watch, and a
read that raced a change is never kept."""

from __future__ import annotations

from lockd.store import open_engine, transaction
from lockd.store.changes import FreshCache, notify_change, watch_for
from tests.support import wait_until


def _write_change(url: str) -> None:
    engine = open_engine(url)
    try:
        with transaction(engine, write=True) as conn:
            conn.exec_driver_sql(
                "UPDATE alembic_version SET version_num = version_num"
            )  # any commit counts on SQLite; PostgreSQL needs the NOTIFY
            notify_change(conn)
    finally:
        engine.dispose()


def test_a_change_committed_elsewhere_starts_a_new_generation(database_url: str) -> None:
    engine = open_engine(database_url)
    watch = watch_for(engine)
    try:
        wait_until(lambda: watch.generation() is not None, 10, "the watch never trusted memory")
        cache: FreshCache[str, int] = FreshCache(watch)
        generation = cache.generation()
        cache.put("input", 1, generation)
        assert cache.get("input") == 1
        _write_change(database_url)  # another engine: another process, as far as the watch knows
        wait_until(lambda: cache.get("input") is None, 1.0, "the change never reached the watch")
    finally:
        watch.close()
        engine.dispose()


def test_a_read_that_raced_a_change_is_not_kept(database_url: str) -> None:
    engine = open_engine(database_url)
    watch = watch_for(engine)
    try:
        wait_until(lambda: watch.generation() is not None, 10, "the watch never trusted memory")
        cache: FreshCache[str, str] = FreshCache(watch)
        before = cache.generation()  # a reader asks the database now …
        _write_change(database_url)  # … a change commits meanwhile …
        wait_until(lambda: watch.generation() != before, 1.0, "the change never reached the watch")
        cache.put("input", "old answer", before)  # … and the reader's answer arrives late
        assert cache.get("input") is None
    finally:
        watch.close()
        engine.dispose()


def test_this_process_reads_its_own_change_at_once(database_url: str) -> None:
    engine = open_engine(database_url)
    watch = watch_for(engine)
    try:
        wait_until(lambda: watch.generation() is not None, 10, "the watch never trusted memory")
        before = watch.generation()
        with transaction(engine, write=True) as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            notify_change(conn)
        assert watch.generation() != before  # no wait: not even for its own NOTIFY
    finally:
        watch.close()
        engine.dispose()
