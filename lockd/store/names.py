"""Reads and writes of lock names, their history, lock provenance and retired inputs.

Over a connection the caller's transaction owns, like `lockd.store.queries`: nothing here
commits. `lock_input` is the per-input mutex of revision writers (a promotion, a refresh's
proposal): a row lock on PostgreSQL, and SQLite's one writer at a time already serialises them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from lockd.store import schema
from lockd.store.changes import notify_change
from lockd.store.queries import insert_if_absent

__all__ = [
    "NameEventRecord",
    "NameRecord",
    "ProvenanceRecord",
    "add_event",
    "delete_name",
    "get_name",
    "get_provenance",
    "is_retired",
    "list_events",
    "list_names",
    "live_names_for_input",
    "lock_input",
    "names_for_input",
    "put_name",
    "put_provenance",
    "restore_input",
    "retire_if_unnamed",
    "retire_input",
    "retired_digests",
    "set_name",
    "stale_names",
    "touch_name",
]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRecord:
    name: str
    input_digest: str
    status: str
    auto_promote: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class NameEventRecord:
    name: str
    seq: int
    action: str
    input_digest: str
    revision: int | None
    lock_digest: str | None
    proposal_id: int | None
    actor: str | None
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceRecord:
    lock_digest: str
    name: str
    preferred_lock_digest: str | None
    preferences: Mapping[str, str]
    upgrade: str | list[str]
    created_at: datetime


def _name(row: Any) -> NameRecord:
    return NameRecord(
        name=row.name,
        input_digest=row.input_digest,
        status=row.status,
        auto_promote=row.auto_promote,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        last_used_at=_utc(row.last_used_at),
    )


# -- names ----------------------------------------------------------------------------------


def lock_input(conn: Connection, input_digest: str) -> bool:
    """Hold the input's row until the transaction ends (revision writers queue here); False if absent."""
    statement = select(schema.inputs.c.digest).where(schema.inputs.c.digest == input_digest)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return conn.execute(statement).first() is not None


def get_name(conn: Connection, name: str, *, for_update: bool = False) -> NameRecord | None:
    statement = select(schema.names).where(schema.names.c.name == name)
    if for_update and conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = conn.execute(statement).first()
    return None if row is None else _name(row)


def list_names(conn: Connection, *, statuses: tuple[str, ...] | None = None) -> list[NameRecord]:
    statement = select(schema.names).order_by(schema.names.c.name)
    if statuses is not None:
        statement = statement.where(schema.names.c.status.in_(statuses))
    return [_name(row) for row in conn.execute(statement)]


def names_for_input(conn: Connection, input_digest: str) -> list[NameRecord]:
    """Every name whose current input this is, archived and retired ones too."""
    table = schema.names
    rows = conn.execute(select(table).where(table.c.input_digest == input_digest).order_by(table.c.name))
    return [_name(row) for row in rows]


def live_names_for_input(conn: Connection, input_digest: str) -> list[NameRecord]:
    return [record for record in names_for_input(conn, input_digest) if record.status == "active"]


def put_name(conn: Connection, name: str, input_digest: str, *, now: datetime) -> bool:
    """Create the name pointing at `input_digest`; False (and nothing written) if it exists."""
    values = {
        "name": name,
        "input_digest": input_digest,
        "status": "active",
        "auto_promote": None,
        "created_at": now,
        "updated_at": now,
        "last_used_at": now,
    }
    notify_change(conn)
    return insert_if_absent(conn, schema.names, values)


def set_name(conn: Connection, name: str, **values: Any) -> None:
    """Update columns of one name: `input_digest`, `status`, `auto_promote`, `updated_at`, `last_used_at`."""
    conn.execute(update(schema.names).where(schema.names.c.name == name).values(**values))
    if set(values) - {"last_used_at"}:
        notify_change(conn)


def touch_name(conn: Connection, name: str, *, now: datetime, not_since: datetime) -> None:
    """Record a use of the name, unless one was recorded after `not_since` (one write per while)."""
    table = schema.names
    conn.execute(
        update(table)
        .where(and_(table.c.name == name, table.c.last_used_at < not_since))
        .values(last_used_at=now)
    )


def stale_names(conn: Connection, *, unused_since: datetime) -> list[NameRecord]:
    """Active names not used since `unused_since`: due for retirement."""
    table = schema.names
    rows = conn.execute(
        select(table).where(and_(table.c.status == "active", table.c.last_used_at < unused_since))
    )
    return [_name(row) for row in rows]


def delete_name(conn: Connection, name: str) -> None:
    conn.execute(delete(schema.name_events).where(schema.name_events.c.name == name))
    conn.execute(delete(schema.names).where(schema.names.c.name == name))
    notify_change(conn)


# -- history ---------------------------------------------------------------------------------


def add_event(
    conn: Connection,
    name: str,
    *,
    action: str,
    input_digest: str,
    revision: int | None,
    lock_digest: str | None,
    actor: str | None,
    now: datetime,
    proposal_id: int | None = None,
) -> int:
    """Append to the name's history; returns its sequence number. Hold the name's row first."""
    events = schema.name_events
    last = conn.execute(select(func.max(events.c.seq)).where(events.c.name == name)).scalar_one()
    seq = 1 if last is None else int(last) + 1
    conn.execute(
        insert(events).values(
            name=name,
            seq=seq,
            action=action,
            input_digest=input_digest,
            revision=revision,
            lock_digest=lock_digest,
            proposal_id=proposal_id,
            actor=actor,
            at=now,
        )
    )
    return seq


def list_events(conn: Connection, name: str) -> list[NameEventRecord]:
    events = schema.name_events
    rows = conn.execute(select(events).where(events.c.name == name).order_by(events.c.seq))
    return [
        NameEventRecord(
            name=row.name,
            seq=row.seq,
            action=row.action,
            input_digest=row.input_digest,
            revision=row.revision,
            lock_digest=row.lock_digest,
            proposal_id=row.proposal_id,
            actor=row.actor,
            at=_utc(row.at),
        )
        for row in rows
    ]


# -- provenance ------------------------------------------------------------------------------


def put_provenance(
    conn: Connection,
    *,
    lock_digest: str,
    name: str,
    preferred_lock_digest: str | None,
    preferences: Mapping[str, str],
    upgrade: str | list[str],
    now: datetime,
) -> None:
    values = {
        "lock_digest": lock_digest,
        "name": name,
        "preferred_lock_digest": preferred_lock_digest,
        "preferences": json.dumps(dict(sorted(preferences.items()))),
        "upgrade": json.dumps(upgrade),
        "created_at": now,
    }
    insert_if_absent(conn, schema.lock_provenance, values)


def get_provenance(conn: Connection, lock_digest: str) -> ProvenanceRecord | None:
    table = schema.lock_provenance
    row = conn.execute(select(table).where(table.c.lock_digest == lock_digest)).first()
    if row is None:
        return None
    return ProvenanceRecord(
        lock_digest=row.lock_digest,
        name=row.name,
        preferred_lock_digest=row.preferred_lock_digest,
        preferences=json.loads(row.preferences),
        upgrade=json.loads(row.upgrade),
        created_at=_utc(row.created_at),
    )


# -- retirement ------------------------------------------------------------------------------


def retire_input(conn: Connection, input_digest: str, *, now: datetime, reason: str) -> bool:
    """Take the input out of drift and the default views; False if it was retired already."""
    values = {"input_digest": input_digest, "retired_at": now, "reason": reason}
    return insert_if_absent(conn, schema.retired_inputs, values)


def restore_input(conn: Connection, input_digest: str) -> None:
    table = schema.retired_inputs
    conn.execute(delete(table).where(table.c.input_digest == input_digest))


def is_retired(conn: Connection, input_digest: str) -> bool:
    table = schema.retired_inputs
    return (
        conn.execute(select(table.c.input_digest).where(table.c.input_digest == input_digest)).first()
        is not None
    )


def retired_digests(conn: Connection, *, before: datetime | None = None) -> dict[str, datetime]:
    """Retired inputs and when they retired (only those retired before `before`, if given)."""
    table = schema.retired_inputs
    statement = select(table.c.input_digest, table.c.retired_at)
    if before is not None:
        statement = statement.where(table.c.retired_at < before)
    return {row.input_digest: _utc(row.retired_at) for row in conn.execute(statement)}


def retire_if_unnamed(conn: Connection, input_digest: str, *, now: datetime, reason: str) -> bool:
    """Retire the input if no active name points at it any longer; True if it retired now."""
    if live_names_for_input(conn, input_digest):
        return False
    return retire_input(conn, input_digest, now=now, reason=reason[:64])
