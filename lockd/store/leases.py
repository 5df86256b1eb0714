"""Lease rows: who holds the single-flight lease on a key, until when, and how it failed.

Two tables hold leases: `resolution_leases`, one row per input digest being resolved or
refreshed, and `drift_lease`, the one row of the running drift run. Both are read and written
here, over a connection the caller's transaction owns, so `lockd.leases` speaks one protocol to
both. `expires_at` is epoch seconds, so both databases compare it as a number. Only resolution
leases record a failure (state and error) for the waiters to read; a drift run's failure is
recorded on its run row instead, so failing a drift lease releases it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, Connection, Table, and_, delete, or_, select, update

from lockd.store import schema
from lockd.store.queries import insert_if_absent

__all__ = [
    "LeaseRecord",
    "LeaseSpace",
    "LeaseState",
    "acquire",
    "fail",
    "get",
    "release",
    "renew",
]

LeaseSpace = Literal["resolution", "drift"]
LeaseState = Literal["running", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRecord:
    key: str
    holder: str
    state: LeaseState
    error: dict[str, Any] | None  # a LockdError's JSON, left for the waiters of a failed holder
    expires_at: float


def _table(space: LeaseSpace) -> tuple[Table, Column[Any]]:
    if space == "resolution":
        return schema.resolution_leases, schema.resolution_leases.c.input_digest
    return schema.drift_lease, schema.drift_lease.c.name


def _records_failures(space: LeaseSpace) -> bool:
    return space == "resolution"


def acquire(conn: Connection, space: LeaseSpace, key: str, holder: str, *, now: float, ttl: float) -> bool:
    """Take the lease on `key` if it is free, failed or expired (its holder stopped renewing it)."""
    table, key_column = _table(space)
    values: dict[str, Any] = {key_column.name: key, "holder": holder, "expires_at": now + ttl}
    taken_over: dict[str, Any] = {"holder": holder, "expires_at": now + ttl}
    free = table.c.expires_at < now
    if _records_failures(space):
        values.update(state="running", error=None)
        taken_over.update(state="running", error=None)
        free = or_(table.c.state == "failed", free)
    if insert_if_absent(conn, table, values):
        return True
    taken = conn.execute(update(table).where(and_(key_column == key, free)).values(**taken_over))
    return taken.rowcount == 1


def get(conn: Connection, space: LeaseSpace, key: str) -> LeaseRecord | None:
    table, key_column = _table(space)
    row = conn.execute(select(table).where(key_column == key)).first()
    if row is None:
        return None
    failed = _records_failures(space) and row.state == "failed"
    error = json.loads(row.error) if failed and row.error is not None else None
    return LeaseRecord(
        key=key,
        holder=row.holder,
        state="failed" if failed else "running",
        error=error,
        expires_at=row.expires_at,
    )


def renew(conn: Connection, space: LeaseSpace, key: str, holder: str, *, expires_at: float) -> bool:
    """Extend a running lease we still hold; False if it was lost (expired and taken over)."""
    table, key_column = _table(space)
    held = and_(key_column == key, table.c.holder == holder)
    if _records_failures(space):
        held = and_(held, table.c.state == "running")
    return conn.execute(update(table).where(held).values(expires_at=expires_at)).rowcount == 1


def release(conn: Connection, space: LeaseSpace, key: str, holder: str) -> None:
    """Drop the lease if we still hold it; a lease taken over since is left to its new holder."""
    table, key_column = _table(space)
    conn.execute(delete(table).where(and_(key_column == key, table.c.holder == holder)))


def fail(
    conn: Connection, space: LeaseSpace, key: str, holder: str, error: dict[str, Any], *, expires_at: float
) -> None:
    """Leave the holder's error for the waiters until `expires_at`; a new request may take the lease at once."""
    if not _records_failures(space):
        release(conn, space, key, holder)
        return
    table, key_column = _table(space)
    conn.execute(
        update(table)
        .where(and_(key_column == key, table.c.holder == holder))
        .values(state="failed", error=json.dumps(error), expires_at=expires_at)
    )
