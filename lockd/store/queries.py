"""Reads and writes of lockd's tables, over a connection the caller's transaction owns.

Nothing here commits: `lockd.service` opens the transaction (`lockd.store.transaction`) and
decides where it ends, so a lock, its rendered files and its revision land together or not
at all. Rows never leave this module; callers get frozen records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select

from lockd.store import schema

__all__ = [
    "InputRecord",
    "LeaseRecord",
    "LockFileRecord",
    "LockSummary",
    "RevisionRecord",
    "TokenRecord",
    "acquire_lease",
    "count_revisions",
    "create_token",
    "current_revision",
    "fail_lease",
    "find_token",
    "get_input",
    "get_lease",
    "get_lock_canonical",
    "get_lock_file",
    "insert_if_absent",
    "list_locks",
    "list_revisions",
    "put_input",
    "put_lock",
    "put_revision",
    "release_lease",
    "renew_lease",
    "revision",
    "where_target",
]


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything lockd stores is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def insert_if_absent(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on both databases; True if a row was written."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    key = next(iter(table.primary_key.columns))
    # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT through SQLAlchemy.
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(key)
    return conn.execute(statement).first() is not None


@dataclass(frozen=True, slots=True)
class InputRecord:
    digest: str
    canonical: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    input_digest: str
    n: int
    lock_digest: str
    created_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class LockFileRecord:
    lock_digest: str
    format: str
    sha256: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class LockSummary:
    """One stored input with its current revision, for listings."""

    input_digest: str
    platform: str
    python: str
    cuda: str | None
    revision: int
    lock_digest: str
    package_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    name: str
    scopes: frozenset[str]
    created_at: datetime
    token_hash: str


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    input_digest: str
    holder: str
    state: str
    error: dict[str, Any] | None
    expires_at: float


# -- inputs, locks, revisions -------------------------------------------------------------


def put_input(conn: Connection, digest: str, canonical: bytes, now: datetime) -> None:
    """Store a canonical input as the exact bytes its digest was taken over."""
    target = json.loads(canonical)["target"]
    insert_if_absent(
        conn,
        schema.inputs,
        {
            "digest": digest,
            "canonical": canonical.decode("utf-8"),
            "platform": target["platform"],
            "python": target["python"],
            "cuda": target["cuda"],
            "created_at": now,
        },
    )


def get_input(conn: Connection, digest: str) -> InputRecord | None:
    row = conn.execute(select(schema.inputs).where(schema.inputs.c.digest == digest)).first()
    if row is None:
        return None
    return InputRecord(row.digest, json.loads(row.canonical), _utc(row.created_at))


def put_lock(
    conn: Connection,
    *,
    digest: str,
    input_digest: str,
    canonical: bytes,
    packages: dict[str, str],
    files: list[LockFileRecord],
    now: datetime,
) -> None:
    """Store a lock with its package index and rendered files; a no-op if already stored."""
    written = insert_if_absent(
        conn,
        schema.locks,
        {
            "digest": digest,
            "input_digest": input_digest,
            "canonical": canonical,
            "package_count": len(packages),
            "created_at": now,
        },
    )
    if not written:
        return  # content-addressed: the stored files are the ones to serve forever
    if packages:
        conn.execute(
            insert(schema.lock_packages),
            [{"lock_digest": digest, "name": name, "version": version} for name, version in packages.items()],
        )
    for record in files:
        conn.execute(
            insert(schema.lock_files).values(
                lock_digest=digest,
                format=record.format,
                sha256=record.sha256,
                media_type=record.media_type,
                content=record.content,
            )
        )


def get_lock_canonical(conn: Connection, digest: str) -> bytes | None:
    row = conn.execute(select(schema.locks.c.canonical).where(schema.locks.c.digest == digest)).first()
    return None if row is None else bytes(row.canonical)


# The statements every cache hit runs are built once: building and keying a SELECT costs more
# Python time than SQLite takes to answer it.
_LOCK_FILE = select(schema.lock_files).where(
    and_(
        schema.lock_files.c.lock_digest == bindparam("lock_digest"),
        schema.lock_files.c.format == bindparam("fmt"),
    )
)
_CURRENT_REVISION = (
    select(schema.revisions)
    .where(schema.revisions.c.input_digest == bindparam("input_digest"))
    .order_by(schema.revisions.c.n.desc())
    .limit(1)
)
_LIVE_TOKEN = select(schema.tokens).where(
    and_(schema.tokens.c.token_hash == bindparam("token_hash"), schema.tokens.c.revoked_at.is_(None))
)


def get_lock_file(conn: Connection, lock_digest: str, fmt: str) -> LockFileRecord | None:
    row = conn.execute(_LOCK_FILE, {"lock_digest": lock_digest, "fmt": fmt}).first()
    if row is None:
        return None
    return LockFileRecord(row.lock_digest, row.format, row.sha256, row.media_type, bytes(row.content))


def _revision(row: Any) -> RevisionRecord:
    return RevisionRecord(row.input_digest, row.n, row.lock_digest, _utc(row.created_at), row.reason)


def put_revision(
    conn: Connection, *, input_digest: str, n: int, lock_digest: str, reason: str, now: datetime
) -> RevisionRecord:
    conn.execute(
        insert(schema.revisions).values(
            input_digest=input_digest, n=n, lock_digest=lock_digest, created_at=now, reason=reason
        )
    )
    return RevisionRecord(input_digest, n, lock_digest, now, reason)


def current_revision(conn: Connection, input_digest: str) -> RevisionRecord | None:
    row = conn.execute(_CURRENT_REVISION, {"input_digest": input_digest}).first()
    return None if row is None else _revision(row)


def revision(conn: Connection, input_digest: str, n: int) -> RevisionRecord | None:
    table = schema.revisions
    row = conn.execute(
        select(table).where(and_(table.c.input_digest == input_digest, table.c.n == n))
    ).first()
    return None if row is None else _revision(row)


def list_revisions(conn: Connection, input_digest: str) -> list[RevisionRecord]:
    table = schema.revisions
    rows = conn.execute(select(table).where(table.c.input_digest == input_digest).order_by(table.c.n))
    return [_revision(row) for row in rows]


def count_revisions(conn: Connection, input_digest: str | None = None) -> int:
    statement = select(func.count()).select_from(schema.revisions)
    if input_digest is not None:
        statement = statement.where(schema.revisions.c.input_digest == input_digest)
    return int(conn.execute(statement).scalar_one())


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


def where_target(statement: _Query, *, platform: str | None, python: str | None, cuda: str | None) -> _Query:
    """Narrow a query that joins `inputs` to one target; `cuda=""` means no accelerator variant."""
    inputs = schema.inputs
    if platform is not None:
        statement = statement.where(inputs.c.platform == platform)
    if python is not None:
        statement = statement.where(inputs.c.python == python)
    if cuda is not None:
        statement = statement.where(inputs.c.cuda.is_(None) if cuda == "" else inputs.c.cuda == cuda)
    return statement


def list_locks(
    conn: Connection,
    *,
    limit: int,
    after: str | None = None,
    platform: str | None = None,
    python: str | None = None,
    cuda: str | None = None,
    package: str | None = None,
) -> list[LockSummary]:
    """Stored inputs with their current revision, ordered by input digest (keyset pagination)."""
    inputs, revisions, locks = schema.inputs, schema.revisions, schema.locks
    latest = (
        select(revisions.c.input_digest, func.max(revisions.c.n).label("n"))
        .group_by(revisions.c.input_digest)
        .subquery()
    )
    current = revisions.alias("current")
    statement = (
        select(
            inputs.c.digest,
            inputs.c.platform,
            inputs.c.python,
            inputs.c.cuda,
            inputs.c.created_at,
            current.c.n,
            current.c.lock_digest,
            current.c.created_at.label("updated_at"),
            locks.c.package_count,
        )
        .join(latest, latest.c.input_digest == inputs.c.digest)
        .join(current, and_(current.c.input_digest == latest.c.input_digest, current.c.n == latest.c.n))
        .join(locks, locks.c.digest == current.c.lock_digest)
        .order_by(inputs.c.digest)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(inputs.c.digest > after)
    statement = where_target(statement, platform=platform, python=python, cuda=cuda)
    if package is not None:
        has_package = select(schema.lock_packages.c.lock_digest).where(
            and_(
                schema.lock_packages.c.lock_digest == current.c.lock_digest,
                schema.lock_packages.c.name == package,
            )
        )
        statement = statement.where(has_package.exists())
    return [
        LockSummary(
            input_digest=row.digest,
            platform=row.platform,
            python=row.python,
            cuda=row.cuda,
            revision=row.n,
            lock_digest=row.lock_digest,
            package_count=row.package_count,
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
        )
        for row in conn.execute(statement)
    ]


# -- tokens -------------------------------------------------------------------------------


def create_token(
    conn: Connection, *, name: str, token_hash: str, scopes: frozenset[str], now: datetime
) -> int:
    result = conn.execute(
        insert(schema.tokens)
        .values(name=name, token_hash=token_hash, scopes=",".join(sorted(scopes)), created_at=now)
        .returning(schema.tokens.c.id)
    )
    return int(result.scalar_one())


def find_token(conn: Connection, token_hash: str) -> TokenRecord | None:
    """The live token with this hash. The lookup is by an index on the hash of a 256-bit
    secret, so its timing reveals nothing usable; the caller still compares in constant time."""
    row = conn.execute(_LIVE_TOKEN, {"token_hash": token_hash}).first()
    if row is None:
        return None
    return TokenRecord(
        row.id, row.name, frozenset(row.scopes.split(",")), _utc(row.created_at), row.token_hash
    )


# -- single-flight leases -----------------------------------------------------------------


def acquire_lease(conn: Connection, input_digest: str, holder: str, *, now: float, ttl: float) -> bool:
    """Take the lease for `input_digest` if it is free, failed or expired."""
    table = schema.resolution_leases
    values = {"input_digest": input_digest, "holder": holder, "state": "running", "error": None}
    if insert_if_absent(conn, table, {**values, "expires_at": now + ttl}):
        return True
    taken = conn.execute(
        update(table)
        .where(
            and_(
                table.c.input_digest == input_digest,
                or_(table.c.state == "failed", table.c.expires_at < now),
            )
        )
        .values(holder=holder, state="running", error=None, expires_at=now + ttl)
    )
    return taken.rowcount == 1


def get_lease(conn: Connection, input_digest: str) -> LeaseRecord | None:
    table = schema.resolution_leases
    row = conn.execute(select(table).where(table.c.input_digest == input_digest)).first()
    if row is None:
        return None
    error = None if row.error is None else json.loads(row.error)
    return LeaseRecord(row.input_digest, row.holder, row.state, error, row.expires_at)


def renew_lease(conn: Connection, input_digest: str, holder: str, *, expires_at: float) -> bool:
    """Extend a running lease we still hold; False if it was lost (expired and taken over)."""
    table = schema.resolution_leases
    renewed = conn.execute(
        update(table)
        .where(
            and_(table.c.input_digest == input_digest, table.c.holder == holder, table.c.state == "running")
        )
        .values(expires_at=expires_at)
    )
    return renewed.rowcount == 1


def release_lease(conn: Connection, input_digest: str, holder: str) -> None:
    table = schema.resolution_leases
    conn.execute(delete(table).where(and_(table.c.input_digest == input_digest, table.c.holder == holder)))


def fail_lease(
    conn: Connection, input_digest: str, holder: str, error: dict[str, Any], *, expires_at: float
) -> None:
    """Leave the holder's error for the waiters; a new request may retry at once."""
    table = schema.resolution_leases
    conn.execute(
        update(table)
        .where(and_(table.c.input_digest == input_digest, table.c.holder == holder))
        .values(state="failed", error=json.dumps(error), expires_at=expires_at)
    )
