"""Garbage collection of retired inputs: which may go, and removing one with everything of it.

An input may go when it has been retired for long enough, is no name's current input (of any
status), and no name's history has pointed at it since a cutoff. Its locks belong to it alone
(a lock's canonical JSON names its input digest), so removing the input removes its locks,
their files and package index, revisions, proposals, provenance and drift verdicts with it.
Over a connection the caller's transaction owns: a removal is all or nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, delete, select

from lockd.store import schema
from lockd.store.changes import notify_change

__all__ = ["delete_input", "gc_candidates"]


def gc_candidates(conn: Connection, *, retired_before: datetime, named_since: datetime) -> list[str]:
    """Retired inputs that `delete_input` may remove, oldest retirement first."""
    retired, names, events = schema.retired_inputs, schema.names, schema.name_events
    current = select(names.c.input_digest).where(names.c.input_digest == retired.c.input_digest)
    recent = select(events.c.input_digest).where(
        and_(events.c.input_digest == retired.c.input_digest, events.c.at >= named_since)
    )
    statement = (
        select(retired.c.input_digest)
        .where(and_(retired.c.retired_at < retired_before, ~current.exists(), ~recent.exists()))
        .order_by(retired.c.retired_at, retired.c.input_digest)
    )
    return [row.input_digest for row in conn.execute(statement)]


def delete_input(conn: Connection, input_digest: str) -> int:
    """Remove a stored input and everything that belongs to it; returns how many locks went."""
    locks = [
        row.digest
        for row in conn.execute(
            select(schema.locks.c.digest).where(schema.locks.c.input_digest == input_digest)
        )
    ]
    for table in (schema.drift_findings, schema.drift_results, schema.proposals, schema.revisions):
        conn.execute(delete(table).where(table.c.input_digest == input_digest))
    if locks:
        for table in (schema.lock_provenance, schema.lock_files, schema.lock_packages):
            conn.execute(delete(table).where(table.c.lock_digest.in_(locks)))
        conn.execute(delete(schema.locks).where(schema.locks.c.digest.in_(locks)))
    conn.execute(delete(schema.retired_inputs).where(schema.retired_inputs.c.input_digest == input_digest))
    conn.execute(delete(schema.inputs).where(schema.inputs.c.digest == input_digest))
    notify_change(conn)
    return len(locks)
