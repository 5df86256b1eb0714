"""Reads and writes of inputs, locks, rendered files, revisions and tokens, over a connection the caller's transaction owns.

Nothing here commits: `lockd.service` opens the transaction (`lockd.store.transaction`) and
decides where it ends, so a lock, its rendered files and its revision land together or not
at all. Rows never leave this module; callers get frozen records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select

from lockd.store import schema
from lockd.store.changes import notify_change

__all__ = [
    "InputRecord",
    "LockFileRecord",
    "LockSummary",
    "RevisionRecord",
    "TokenRecord",
    "create_token",
    "current_revision",
    "find_token",
    "get_input",
    "get_lock_canonical",
    "get_lock_file",
    "insert_if_absent",
    "list_locks",
    "list_revisions",
    "list_tokens",
    "put_input",
    "put_lock",
    "put_lock_file",
    "put_revision",
    "revision",
    "revoke_token",
    "touch_token",
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
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    name_prefixes: tuple[str, ...] | None = None  # the name patterns it is limited to; None: any


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
    if files:
        conn.execute(insert(schema.lock_files), [_lock_file_row(digest, record) for record in files])


def put_lock_file(conn: Connection, record: LockFileRecord) -> bool:
    """Store one rendered file of a stored lock (a format rendered when first asked for); True if
    written, False if one was stored already (that one is served: its bytes never change)."""
    return insert_if_absent(conn, schema.lock_files, _lock_file_row(record.lock_digest, record))


def _lock_file_row(lock_digest: str, record: LockFileRecord) -> dict[str, Any]:
    return {
        "lock_digest": lock_digest,
        "format": record.format,
        "sha256": record.sha256,
        "media_type": record.media_type,
        "content": record.content,
    }


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
    and_(
        schema.tokens.c.token_hash == bindparam("token_hash"),
        schema.tokens.c.revoked_at.is_(None),
        or_(schema.tokens.c.expires_at.is_(None), schema.tokens.c.expires_at > bindparam("now")),
    )
)


def lock_heads(conn: Connection, lock_digests: list[str], size: int = 256) -> dict[str, bytes]:
    """The first `size` bytes of each lock's canonical JSON: its first keys, for listings."""
    if not lock_digests:
        return {}
    locks = schema.locks
    statement = select(locks.c.digest, func.substr(locks.c.canonical, 1, size)).where(
        locks.c.digest.in_(sorted(set(lock_digests)))
    )
    return {row[0]: bytes(row[1]) for row in conn.execute(statement)}


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
    notify_change(conn)  # delivered at commit: other processes stop serving the previous revision
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
    conn: Connection,
    *,
    name: str,
    token_hash: str,
    scopes: frozenset[str],
    now: datetime,
    expires_at: datetime | None = None,
    name_prefixes: tuple[str, ...] | None = None,
) -> int:
    values = {"name": name, "token_hash": token_hash, "scopes": ",".join(sorted(scopes)), "created_at": now}
    values["name_prefixes"] = None if name_prefixes is None else ",".join(name_prefixes)
    result = conn.execute(
        insert(schema.tokens).values(**values, expires_at=expires_at).returning(schema.tokens.c.id)
    )
    return int(result.scalar_one())


def find_token(conn: Connection, token_hash: str, *, now: datetime) -> TokenRecord | None:
    """The live (not revoked, not expired) token with this hash. The lookup is by an index on
    the hash of a 256-bit secret, so its timing reveals nothing usable; the caller still
    compares in constant time."""
    row = conn.execute(_LIVE_TOKEN, {"token_hash": token_hash, "now": now}).first()
    return None if row is None else _token(row)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        row.id,
        row.name,
        frozenset(row.scopes.split(",")),
        _utc(row.created_at),
        row.token_hash,
        revoked_at=_maybe_utc(row.revoked_at),
        expires_at=_maybe_utc(row.expires_at),
        last_used_at=_maybe_utc(row.last_used_at),
        name_prefixes=None if row.name_prefixes is None else tuple(row.name_prefixes.split(",")),
    )


def touch_token(conn: Connection, token_id: int, *, now: datetime, not_since: datetime) -> None:
    """Record a use of the token, unless one was recorded after `not_since` (one write per while)."""
    table = schema.tokens
    stale = or_(table.c.last_used_at.is_(None), table.c.last_used_at < not_since)
    conn.execute(update(table).where(and_(table.c.id == token_id, stale)).values(last_used_at=now))


def list_tokens(conn: Connection) -> list[TokenRecord]:
    """Every token, revoked ones too, oldest first."""
    return [_token(row) for row in conn.execute(select(schema.tokens).order_by(schema.tokens.c.id))]


def revoke_token(conn: Connection, token_id: int, *, now: datetime) -> TokenRecord | None:
    """Mark a token revoked (at once, for every replica that asks the database); None if there is none.

    Revoking twice keeps the first time. The record is returned as it is after the call.
    """
    table = schema.tokens
    conn.execute(
        update(table).where(and_(table.c.id == token_id, table.c.revoked_at.is_(None))).values(revoked_at=now)
    )
    row = conn.execute(select(table).where(table.c.id == token_id)).first()
    return None if row is None else _token(row)
