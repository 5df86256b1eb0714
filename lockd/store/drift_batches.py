"""The batches of a drift run that replicas claim, and what the run's verdicts add up to.

A run's locks are written as batches when it starts (`put_batches`). Every replica working on
the run claims one open batch at a time (`claim_batch`): on PostgreSQL the candidate row is
read `FOR UPDATE SKIP LOCKED`, so replicas claiming at once get different batches without
waiting on each other; on SQLite write transactions are serialised anyway. A claim holds until
`claimed_until` and is renewed while its replica works; a replica that dies stops renewing, and
once the claim has expired the batch is claimable again. The verdict of a lock is the one row
of `drift_results` keyed by (run, input), so a lock checked twice (a claim taken over from a
replica that was only slow) still has exactly one verdict: the first one stored.
Over a connection the caller's transaction owns, like the rest of `lockd.store`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from lockd.drift import FindingKind
from lockd.store import schema

__all__ = [
    "BatchLock",
    "BatchRows",
    "ClaimedBatch",
    "batch_rows",
    "claim_batch",
    "finish_batch",
    "open_batches",
    "put_batches",
    "renew_claim",
    "run_to_help",
    "verdict_counts",
    "verdicts_among",
]


@dataclass(frozen=True, slots=True)
class BatchLock:
    """One lock a drift run checks: the input, the revision it serves, and that revision's lock."""

    input_digest: str
    revision: int
    lock_digest: str


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    run_id: int
    n: int
    locks: tuple[BatchLock, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRows:
    """What checking a batch reads from the database, read for the whole batch at once."""

    locks: Mapping[str, bytes]  # canonical lock bytes by lock digest
    inputs: Mapping[str, dict[str, Any]]  # canonical input by input digest
    done: frozenset[str]  # inputs that already have their verdict in the run


def batch_rows(conn: Connection, run_id: int, locks: Sequence[BatchLock]) -> BatchRows:
    """The batch's stored locks and inputs and which of them have a verdict: three queries for
    the batch instead of a read transaction per lock. A lock or input that is gone is absent."""
    lock_rows, input_rows = schema.locks, schema.inputs
    digests = sorted({lock.lock_digest for lock in locks})
    inputs = sorted({lock.input_digest for lock in locks})
    found_locks = conn.execute(
        select(lock_rows.c.digest, lock_rows.c.canonical).where(lock_rows.c.digest.in_(digests))
    )
    found_inputs = conn.execute(
        select(input_rows.c.digest, input_rows.c.canonical).where(input_rows.c.digest.in_(inputs))
    )
    return BatchRows(
        locks={row.digest: bytes(row.canonical) for row in found_locks},
        inputs={row.digest: json.loads(row.canonical) for row in found_inputs},
        done=frozenset(verdicts_among(conn, run_id, inputs)),
    )


def put_batches(conn: Connection, run_id: int, locks: Sequence[BatchLock], *, size: int) -> int:
    """Write a run's locks as batches of `size`; returns how many batches."""
    rows = [
        {
            "run_id": run_id,
            "n": n,
            "locks": json.dumps(
                [[lock.input_digest, lock.revision, lock.lock_digest] for lock in locks[start : start + size]]
            ),
        }
        for n, start in enumerate(range(0, len(locks), size))
    ]
    if rows:
        conn.execute(insert(schema.drift_batches), rows)
    return len(rows)


def _claimable(run_id: int, now: datetime) -> object:
    batches = schema.drift_batches
    return and_(
        batches.c.run_id == run_id,
        batches.c.done_at.is_(None),
        or_(batches.c.claimed_until.is_(None), batches.c.claimed_until < now),
    )


def claim_batch(
    conn: Connection, run_id: int, *, holder: str, now: datetime, until: datetime
) -> ClaimedBatch | None:
    """Claim the first open batch nobody holds (or whose claim expired); None when there is none."""
    batches = schema.drift_batches
    candidate = (
        select(batches.c.n, batches.c.locks)
        .where(_claimable(run_id, now))  # type: ignore[arg-type]
        .order_by(batches.c.n)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = conn.execute(candidate).first()
    if row is None:
        return None
    conn.execute(
        update(batches)
        .where(and_(batches.c.run_id == run_id, batches.c.n == row.n))
        .values(claimed_by=holder, claimed_until=until)
    )
    locks = tuple(BatchLock(digest, revision, lock) for digest, revision, lock in json.loads(row.locks))
    return ClaimedBatch(run_id, row.n, locks)


def renew_claim(conn: Connection, batch: ClaimedBatch, *, holder: str, until: datetime) -> bool:
    """Extend a claim; False if it is no longer this holder's (it expired and was taken over)."""
    batches = schema.drift_batches
    done = conn.execute(
        update(batches)
        .where(and_(batches.c.run_id == batch.run_id, batches.c.n == batch.n, batches.c.claimed_by == holder))
        .values(claimed_until=until)
        .returning(batches.c.n)
    ).first()
    return done is not None


def finish_batch(conn: Connection, batch: ClaimedBatch, *, now: datetime) -> None:
    """Every lock of the batch has its verdict (whoever stored it)."""
    batches = schema.drift_batches
    conn.execute(
        update(batches)
        .where(and_(batches.c.run_id == batch.run_id, batches.c.n == batch.n, batches.c.done_at.is_(None)))
        .values(done_at=now)
    )


def open_batches(conn: Connection, run_id: int) -> int:
    """Batches of the run not done yet, claimed or not."""
    batches = schema.drift_batches
    statement = select(func.count()).where(and_(batches.c.run_id == run_id, batches.c.done_at.is_(None)))
    return int(conn.execute(statement).scalar_one())


def verdicts_among(conn: Connection, run_id: int, input_digests: Sequence[str]) -> set[str]:
    """Which of these inputs already have their verdict in the run."""
    results = schema.drift_results
    statement = select(results.c.input_digest).where(
        and_(results.c.run_id == run_id, results.c.input_digest.in_(list(input_digests)))
    )
    return {row.input_digest for row in conn.execute(statement)}


def verdict_counts(conn: Connection, run_id: int) -> dict[FindingKind, int]:
    """The run's verdicts by status, whichever replica stored them."""
    results = schema.drift_results
    statement = (
        select(results.c.status, func.count()).where(results.c.run_id == run_id).group_by(results.c.status)
    )
    return {row[0]: int(row[1]) for row in conn.execute(statement)}


def run_to_help(conn: Connection, *, now: datetime, alive_since: datetime) -> int | None:
    """The running run (its heartbeat newer than `alive_since`) with a batch to claim, if any."""
    runs, batches = schema.drift_runs, schema.drift_batches
    open_batch = select(batches.c.n).where(_claimable(runs.c.id, now))  # type: ignore[arg-type]
    statement = (
        select(runs.c.id)
        .where(and_(runs.c.status == "running", runs.c.heartbeat_at >= alive_since, open_batch.exists()))
        .order_by(runs.c.id.desc())
        .limit(1)
    )
    row = conn.execute(statement).first()
    return None if row is None else int(row.id)
