"""Retirement and garbage collection: what leaves drift, and what may finally be deleted.

A name not used (locked or moved) for LOCKD_NAME_RETIRE_AFTER seconds retires; an input
retires once no active name points at it (`lockd.names` retires the input a name leaves at
once). Retired inputs are out of drift and the default dashboard view, and still served
byte-identical by digest; locking them under a name again restores them.

`gc` deletes retired inputs retired for longer than LOCKD_GC_AFTER that no name has pointed at
within that time and that are no name's current input, each in one transaction with every lock,
file, revision, proposal and drift verdict of it. An input that was never named is never retired,
so nothing unnamed is ever collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lockd.service import Service
from lockd.store import names as rows
from lockd.store import queries, transaction
from lockd.store import retirement as gc_rows

__all__ = ["GcReport", "RetireReport", "collect_garbage", "retire_unused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetireReport:
    names: tuple[str, ...]  # names that retired now
    inputs: tuple[str, ...]  # inputs that retired with them


@dataclass(frozen=True, slots=True, kw_only=True)
class GcReport:
    inputs: tuple[str, ...]  # deleted (or, in a dry run, deletable) input digests
    locks: int  # locks deleted with them
    dry_run: bool


def retire_unused(service: Service, *, now: datetime | None = None) -> RetireReport:
    """Retire every active name unused for LOCKD_NAME_RETIRE_AFTER, and the inputs left unnamed."""
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(seconds=service.settings.name_retire_after)
    names: list[str] = []
    inputs: list[str] = []
    with transaction(service.engine, write=True) as conn:
        for record in rows.stale_names(conn, unused_since=cutoff):
            rows.get_name(conn, record.name, for_update=True)
            rows.set_name(conn, record.name, status="retired", updated_at=moment)
            current = queries.current_revision(conn, record.input_digest)
            rows.add_event(
                conn,
                record.name,
                action="retired",
                input_digest=record.input_digest,
                revision=None if current is None else current.n,
                lock_digest=None if current is None else current.lock_digest,
                actor=None,
                now=moment,
            )
            names.append(record.name)
            reason = f"name {record.name} unused"
            if rows.retire_if_unnamed(conn, record.input_digest, now=moment, reason=reason):
                inputs.append(record.input_digest)
    return RetireReport(names=tuple(names), inputs=tuple(inputs))


def collect_garbage(
    service: Service, *, older_than: float | None = None, dry_run: bool = False, now: datetime | None = None
) -> GcReport:
    """Delete retired inputs older than `older_than` seconds (LOCKD_GC_AFTER) nobody named since."""
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(seconds=service.settings.gc_after if older_than is None else older_than)
    with transaction(service.engine, write=False) as conn:
        candidates = gc_rows.gc_candidates(conn, retired_before=cutoff, named_since=cutoff)
    if dry_run:
        return GcReport(inputs=tuple(candidates), locks=0, dry_run=True)
    deleted: list[str] = []
    locks = 0
    for digest in candidates:
        with transaction(service.engine, write=True) as conn:
            # Checked again inside the transaction: a name may have moved to it meanwhile.
            rows.lock_input(conn, digest)
            if digest not in gc_rows.gc_candidates(conn, retired_before=cutoff, named_since=cutoff):
                continue
            locks += gc_rows.delete_input(conn, digest)
        deleted.append(digest)
    return GcReport(inputs=tuple(deleted), locks=locks, dry_run=False)
