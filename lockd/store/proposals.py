"""Reads and writes of proposals: changed re-resolutions of an input waiting for promotion.

Over a connection the caller's transaction owns: nothing here commits. The diff is stored as
`lockd.lock_diff.LockDiff` JSON and comes back as a dict; the service layer turns it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from lockd.store import schema

__all__ = [
    "ProposalRecord",
    "decide_proposal",
    "get_proposal",
    "list_proposals",
    "open_proposal",
    "put_proposal",
    "supersede_open",
]


def _maybe_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalRecord:
    id: int
    input_digest: str
    base_revision: int
    base_lock_digest: str
    lock_digest: str
    source: str
    status: str
    diff: dict[str, Any]
    created_at: datetime
    created_by: str | None
    decided_at: datetime | None
    decided_by: str | None
    revision: int | None


def _proposal(row: Any) -> ProposalRecord:
    created_at = _maybe_utc(row.created_at)
    assert created_at is not None
    return ProposalRecord(
        id=row.id,
        input_digest=row.input_digest,
        base_revision=row.base_revision,
        base_lock_digest=row.base_lock_digest,
        lock_digest=row.lock_digest,
        source=row.source,
        status=row.status,
        diff=json.loads(row.diff),
        created_at=created_at,
        created_by=row.created_by,
        decided_at=_maybe_utc(row.decided_at),
        decided_by=row.decided_by,
        revision=row.revision,
    )


def put_proposal(
    conn: Connection,
    *,
    input_digest: str,
    base_revision: int,
    base_lock_digest: str,
    lock_digest: str,
    source: str,
    diff: dict[str, Any],
    created_by: str | None,
    now: datetime,
) -> int:
    values = {
        "input_digest": input_digest,
        "base_revision": base_revision,
        "base_lock_digest": base_lock_digest,
        "lock_digest": lock_digest,
        "source": source,
        "status": "open",
        "diff": json.dumps(diff, sort_keys=True),
        "created_at": now,
        "created_by": created_by,
    }
    table = schema.proposals
    return int(conn.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())


def get_proposal(conn: Connection, proposal_id: int, *, for_update: bool = False) -> ProposalRecord | None:
    statement = select(schema.proposals).where(schema.proposals.c.id == proposal_id)
    if for_update and conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = conn.execute(statement).first()
    return None if row is None else _proposal(row)


def list_proposals(conn: Connection, input_digest: str, *, status: str | None = None) -> list[ProposalRecord]:
    """An input's proposals, newest first."""
    table = schema.proposals
    statement = select(table).where(table.c.input_digest == input_digest).order_by(table.c.id.desc())
    if status is not None:
        statement = statement.where(table.c.status == status)
    return [_proposal(row) for row in conn.execute(statement)]


def open_proposal(conn: Connection, input_digest: str) -> ProposalRecord | None:
    """The input's open proposal (a newer one supersedes the others), or None."""
    found = list_proposals(conn, input_digest, status="open")
    return found[0] if found else None


def supersede_open(conn: Connection, input_digest: str, *, now: datetime, by: str | None) -> None:
    """Close the input's open proposals: a newer proposal or a promotion replaced them."""
    table = schema.proposals
    conn.execute(
        update(table)
        .where(and_(table.c.input_digest == input_digest, table.c.status == "open"))
        .values(status="superseded", decided_at=now, decided_by=by)
    )


def decide_proposal(
    conn: Connection, proposal_id: int, *, status: str, now: datetime, by: str | None, revision: int | None
) -> None:
    table = schema.proposals
    conn.execute(
        update(table)
        .where(table.c.id == proposal_id)
        .values(status=status, decided_at=now, decided_by=by, revision=revision)
    )
