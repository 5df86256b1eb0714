"""Engines and transactions: SQLite by default, PostgreSQL by URL, and the Alembic hooks.

SQLite is opened in WAL mode with a busy timeout, and write transactions start with
`BEGIN IMMEDIATE`: a deferred transaction that later writes can fail at once with
SQLITE_BUSY (the busy handler is not consulted on a snapshot upgrade), which is exactly
what 50 concurrent identical requests would hit. Read transactions start with a plain
(deferred) BEGIN, which takes no lock in WAL mode; `read` runs in autocommit mode, without
BEGIN/COMMIT at all (on PostgreSQL those are two of a cache hit's three round trips).

PostgreSQL connections are not pinged with a `SELECT 1` at every checkout (a round trip per
transaction, most of the cost of a cache hit). Instead a checkout looks at the socket without
blocking: a backend that was terminated has already sent its FATAL message or closed, so a
readable idle socket means a dead connection, which the pool replaces. Connections are
recycled after `_RECYCLE_SECONDS`, before idle timeouts of proxies cut them, and `read`
retries once on a disconnect that slipped past both.

The Alembic script directory is the package `lockd.migrations` (the top-level `migrations/`
of the repository, mapped into the package by setup.py), found with `importlib.resources` in
a wheel and an editable install alike.
"""

from __future__ import annotations

import importlib.resources
import select
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError

from lockd.errors import StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "alembic_config",
    "head_revision",
    "migrate",
    "migrations_dir",
    "open_engine",
    "read",
    "schema_revision",
    "sqlite_row",
    "transaction",
]

_T = TypeVar("_T")
_RECYCLE_SECONDS = 1800
_MIGRATIONS_PACKAGE = "lockd.migrations"


def open_engine(url: str) -> Engine:
    """An engine for `url`; creates the SQLite file's directory. Connections are lazy."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(url, pool_size=10, max_overflow=40, pool_recycle=_RECYCLE_SECONDS, pool_timeout=60)
    event.listen(engine, "checkout", _refuse_dead_connection)
    return engine


def _refuse_dead_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose idle socket is readable was closed by the server: replace it.

    A poll costs a system call, not a round trip. `DisconnectionError` makes the pool discard
    the connection and check out (or open) another one.
    """
    try:
        fileno = dbapi_connection.fileno()
    except Exception as exc:  # closed or broken: psycopg raises its own OperationalError
        raise DisconnectionError("pooled connection is closed") from exc
    poller = select.poll()  # not select.select: it cannot watch descriptors above 1023
    poller.register(fileno, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_engine(url: str) -> Engine:
    path = url.removeprefix("sqlite:///").split("?", 1)[0] if url.startswith("sqlite:///") else ""
    pool: dict[str, Any] = {}
    if path and path != ":memory:":
        Path(path.removeprefix("file:")).parent.mkdir(parents=True, exist_ok=True)
        pool = {"pool_size": 10, "max_overflow": 40}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("lockd_autocommit", False):
            return  # pysqlite's commit/rollback without a BEGIN are no-ops
        immediate = options.get("lockd_write", False)
        # On the driver connection: SQLAlchemy's statement machinery costs more than BEGIN itself.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]

    return engine


@contextmanager
def _store_errors() -> Iterator[None]:
    """Database failures become `StoreUnavailable`; lockd's own errors pass through. A SQLite
    error raised by its driver itself (`sqlite_row`, the `begin` hook) is one too."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error) as exc:
        raise StoreUnavailable(
            "the database failed: " + type(exc).__name__,
            hint="check LOCKD_DATABASE_URL and that the database is up and migrated (`lockd migrate`)",
            context={"error": type(exc).__name__},
        ) from exc


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back on any exception.

    Database failures become `StoreUnavailable`; lockd's own errors pass through.
    """
    with _store_errors(), engine.connect() as conn:
        if write:
            conn.execution_options(lockd_write=True)  # read by the SQLite `begin` hook
        with conn.begin():
            yield conn


def read(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    """`work` on a connection in autocommit mode, run again once on a fresh connection if the
    first one turns out to be dead (the database restarted, a proxy cut it).

    Autocommit: no BEGIN and no COMMIT round trips, so each statement sees its own snapshot.
    Use it for one statement, or for statements whose rows cannot disagree (a revision and
    the files of its lock, which never change). `work` must only read: it may run twice.
    Failures become `StoreUnavailable`.
    """
    try:
        return _autocommit(engine, work)
    except StoreUnavailable as exc:
        cause = exc.__cause__
        if not (isinstance(cause, DBAPIError) and cause.connection_invalidated):
            raise
    return _autocommit(engine, work)


def sqlite_row(engine: Engine, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
    """The first row of one read statement on a SQLite engine, run on a pooled connection's
    driver connection: in autocommit, as every one of them is (`_sqlite_engine`), and without
    SQLAlchemy's statement machinery, which costs ten times the lookup itself (a metadata cache
    miss: 22 µs against 70-108 µs of CPU, and it is asked for every file a cold resolution
    reads). For the few statements a resolution runs hundreds of times; `sql` is SQLite's own
    text, with `?` parameters. Failures become `StoreUnavailable`, as `read`'s do.
    """
    with _store_errors():
        connection = engine.raw_connection()
        try:
            row: tuple[Any, ...] | None = connection.driver_connection.execute(sql, params).fetchone()  # type: ignore[union-attr]
        finally:
            connection.close()  # back to the pool
    return row


def _autocommit(engine: Engine, work: Callable[[Connection], _T]) -> _T:
    with _store_errors(), engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(lockd_autocommit=True)  # read by the SQLite `begin` hook
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT")  # reset when the pool takes it back
        return work(conn)


def migrations_dir() -> Path:
    """The Alembic script directory, as installed with lockd (`pip install`, or `-e` for a checkout).

    Raises `StoreUnavailable` when lockd runs from files that were never installed: a bare
    `PYTHONPATH` has no `lockd.migrations`, because the directory lives outside `lockd/`.
    """
    try:
        location = importlib.resources.files(_MIGRATIONS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise StoreUnavailable(
            "lockd's migrations are not installed",
            hint="install lockd (`pip install .`, or `make dev` for a checkout) instead of running it from PYTHONPATH",
        ) from exc
    # Alembic reads a directory on disk; lockd is never installed zipped, where this would fail.
    if not isinstance(location, Path):
        raise StoreUnavailable(
            "lockd's migrations are not a directory on disk", context={"location": str(location)}
        )
    return location


def alembic_config(url: str) -> Config:
    # Alembic (and Mako with it) loads only where migrations are read or run: most commands never do.
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> str:
    """Upgrade the schema to head; returns the head revision."""
    from alembic import command  # noqa: PLC0415 (see alembic_config)

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"migration failed: {type(exc).__name__}", context={"error": str(exc)[:500]}
        ) from exc
    return head_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 (see alembic_config)

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return ",".join(sorted(heads))


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at (None if never migrated); raises StoreUnavailable."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 (see alembic_config)

    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    return ",".join(sorted(heads)) if heads else None


def check_writable(engine: Engine) -> None:
    """Raises `StoreUnavailable` unless the database takes a write now (not a read-only file,
    session or standby): an update of no rows, rolled back, so nothing is ever written."""
    try:
        with engine.connect() as conn:
            conn.execution_options(lockd_write=True)  # BEGIN IMMEDIATE on SQLite: the write lock
            with conn.begin() as tx:
                conn.execute(text("UPDATE alembic_version SET version_num = version_num WHERE 1 = 0"))
                tx.rollback()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0][:200]
        raise StoreUnavailable(f"the database refuses writes: {reason}") from exc
