"""Reads and writes of drift runs, per-lock results and findings (the run lease is `lockd.store.leases`).

Over a connection the caller's transaction owns, like `lockd.store.queries`: nothing here
commits. Rows come back as frozen records; findings come back as `lockd.drift.Finding`.
A run left `running` by a crashed process is reported as `abandoned` once its heartbeat is
older than the lease, so no reader ever mistakes it for a run in progress or a complete one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection, and_, delete, func, insert, select, update

from lockd.advisories import Vulnerability
from lockd.drift import FINDING_KINDS, AdvisoryStatus, ChangeKind, DriftReport, Finding, FindingKind
from lockd.store import schema
from lockd.store.queries import insert_if_absent, where_target

__all__ = [
    "DriftResultRecord",
    "DriftRunRecord",
    "RunStatus",
    "abandon_stale_runs",
    "finish_run",
    "get_run",
    "heartbeat",
    "latest_result",
    "latest_run",
    "list_results",
    "list_runs",
    "put_report",
    "result_findings",
    "run_covers",
    "run_findings",
    "stale_cutoff",
    "start_run",
]

RunStatus = Literal["running", "complete", "failed", "abandoned"]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DriftRunRecord:
    id: int
    status: RunStatus
    trigger: str
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    scheduled_for: datetime | None
    duration_seconds: float | None
    locks_total: int
    locks_checked: int
    counts: Mapping[FindingKind, int]  # locks by status
    error: str | None
    advisories: AdvisoryStatus | None = None  # None: recorded before the advisory check existed
    advisories_error: str | None = None


@dataclass(frozen=True, slots=True)
class DriftResultRecord:
    """One lock's verdict in one run, with what the listing shows about the lock."""

    run_id: int
    input_digest: str
    revision: int
    lock_digest: str
    status: FindingKind
    fresh_lock_digest: str | None
    checked_at: datetime
    platform: str
    python: str
    cuda: str | None
    package_count: int
    lock_created_at: datetime  # when this revision was stored: the lock's last change
    requirements: tuple[str, ...]  # the input's top-level requirements, to name the lock
    advisories: AdvisoryStatus | None = None


def _run(row: Any, *, stale_before: datetime | None) -> DriftRunRecord:
    status: RunStatus = row.status
    heartbeat_at = _utc(row.heartbeat_at)
    assert heartbeat_at is not None
    if status == "running" and stale_before is not None and heartbeat_at < stale_before:
        status = "abandoned"  # its process died; the next run will record that too
    started_at = _utc(row.started_at)
    assert started_at is not None
    return DriftRunRecord(
        id=row.id,
        status=status,
        trigger=row.trigger,
        started_at=started_at,
        heartbeat_at=heartbeat_at,
        finished_at=_utc(row.finished_at),
        scheduled_for=_utc(row.scheduled_for),
        duration_seconds=row.duration_seconds,
        locks_total=row.locks_total,
        locks_checked=row.locks_checked,
        counts={kind: getattr(row, f"n_{kind}") for kind in FINDING_KINDS},
        error=row.error,
        advisories=row.advisories,
        advisories_error=row.advisories_error,
    )


# -- runs -----------------------------------------------------------------------------------


def heartbeat(conn: Connection, run_id: int, *, now: datetime, locks_checked: int) -> None:
    """The run is alive and has checked `locks_checked` locks (its lease is renewed with it)."""
    runs = schema.drift_runs
    conn.execute(
        update(runs).where(runs.c.id == run_id).values(heartbeat_at=now, locks_checked=locks_checked)
    )


def abandon_stale_runs(conn: Connection, *, now: datetime) -> list[int]:
    """Mark every `running` run abandoned. Call only while holding the lease: then none is live."""
    runs = schema.drift_runs
    stale = [row.id for row in conn.execute(select(runs.c.id).where(runs.c.status == "running"))]
    if stale:
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(stale))
            .values(status="abandoned", error="interrupted: the process stopped before the run finished")
        )
    # Findings of an abandoned run are partial: keep the run row as evidence, drop the rest.
    for table in (schema.drift_findings, schema.drift_results, schema.drift_batches):
        if stale:
            conn.execute(delete(table).where(table.c.run_id.in_(stale)))
    return stale


def start_run(
    conn: Connection,
    *,
    trigger: str,
    holder: str,
    now: datetime,
    locks_total: int,
    scheduled_for: datetime | None = None,
) -> int:
    values: dict[str, Any] = {
        "status": "running",
        "trigger": trigger,
        "holder": holder,
        "started_at": now,
        "heartbeat_at": now,
        "scheduled_for": scheduled_for,
        "locks_total": locks_total,
        "locks_checked": 0,
        "error": None,
    }
    values.update({f"n_{kind}": 0 for kind in FINDING_KINDS})
    result = conn.execute(insert(schema.drift_runs).values(**values).returning(schema.drift_runs.c.id))
    return int(result.scalar_one())


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: RunStatus,
    now: datetime,
    duration_seconds: float,
    counts: Mapping[FindingKind, int],
    locks_checked: int,
    error: str | None = None,
    advisories: AdvisoryStatus | None = None,
    advisories_error: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "heartbeat_at": now,
        "duration_seconds": duration_seconds,
        "locks_checked": locks_checked,
        "error": error,
        "advisories": advisories,
        "advisories_error": advisories_error,
    }
    values.update({f"n_{kind}": counts.get(kind, 0) for kind in FINDING_KINDS})
    runs = schema.drift_runs
    conn.execute(update(runs).where(and_(runs.c.id == run_id, runs.c.status == "running")).values(**values))


def get_run(conn: Connection, run_id: int, *, stale_before: datetime | None = None) -> DriftRunRecord | None:
    row = conn.execute(select(schema.drift_runs).where(schema.drift_runs.c.id == run_id)).first()
    return None if row is None else _run(row, stale_before=stale_before)


def latest_run(
    conn: Connection, *, statuses: Iterable[RunStatus] | None = None, stale_before: datetime | None = None
) -> DriftRunRecord | None:
    runs = schema.drift_runs
    statement = select(runs).order_by(runs.c.id.desc()).limit(1)
    if statuses is not None:
        statement = statement.where(runs.c.status.in_(list(statuses)))
    row = conn.execute(statement).first()
    return None if row is None else _run(row, stale_before=stale_before)


def list_runs(conn: Connection, *, limit: int, stale_before: datetime | None = None) -> list[DriftRunRecord]:
    """The newest `limit` runs, oldest first (the order a history chart reads in)."""
    runs = schema.drift_runs
    rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
    return [_run(row, stale_before=stale_before) for row in reversed(rows)]


def run_covers(conn: Connection, moment: datetime) -> bool:
    """Whether a run that is not abandoned or failed started at or after `moment`."""
    runs = schema.drift_runs
    statement = select(func.count()).where(
        and_(runs.c.started_at >= moment, runs.c.status.in_(["running", "complete"]))
    )
    return int(conn.execute(statement).scalar_one()) > 0


# -- results and findings -------------------------------------------------------------------


def put_report(conn: Connection, run_id: int, revision: int, report: DriftReport, *, now: datetime) -> bool:
    """Store a lock's verdict in the run with its findings; False (nothing written) if it has one."""
    values = {
        "run_id": run_id,
        "input_digest": report.input_digest,
        "revision": revision,
        "lock_digest": report.lock_digest,
        "status": report.status,
        "fresh_lock_digest": report.fresh_lock_digest,
        "checked_at": now,
        "advisories": report.advisories,
    }
    if not insert_if_absent(conn, schema.drift_results, values):
        return False  # another replica checked this lock first (a claim taken over)
    rows = [
        {
            "run_id": run_id,
            "input_digest": report.input_digest,
            "kind": finding.kind,
            "package": finding.package,
            "filename": finding.filename,
            "old_version": None if finding.old_version is None else str(finding.old_version),
            "new_version": None if finding.new_version is None else str(finding.new_version),
            "old_sha256": finding.old_sha256,
            "new_sha256": finding.new_sha256,
            "change": finding.change,
            "code": finding.code,
            "message": finding.message,
            "advisory": None if finding.advisory is None else json.dumps(finding.advisory.to_json()),
        }
        for finding in report.findings
    ]
    if rows:
        conn.execute(insert(schema.drift_findings), rows)
    return True


def _result_statement() -> Any:
    results, inputs, revisions, locks = schema.drift_results, schema.inputs, schema.revisions, schema.locks
    return (
        select(
            results,
            inputs.c.platform,
            inputs.c.python,
            inputs.c.cuda,
            inputs.c.canonical,
            locks.c.package_count,
            revisions.c.created_at.label("lock_created_at"),
        )
        .join(inputs, inputs.c.digest == results.c.input_digest)
        .join(locks, locks.c.digest == results.c.lock_digest)
        .join(
            revisions,
            and_(revisions.c.input_digest == results.c.input_digest, revisions.c.n == results.c.revision),
        )
    )


def _result(row: Any) -> DriftResultRecord:
    checked_at = _utc(row.checked_at)
    lock_created_at = _utc(row.lock_created_at)
    assert checked_at is not None and lock_created_at is not None
    return DriftResultRecord(
        run_id=row.run_id,
        input_digest=row.input_digest,
        revision=row.revision,
        lock_digest=row.lock_digest,
        status=row.status,
        fresh_lock_digest=row.fresh_lock_digest,
        checked_at=checked_at,
        platform=row.platform,
        python=row.python,
        cuda=row.cuda,
        package_count=row.package_count,
        lock_created_at=lock_created_at,
        requirements=tuple(json.loads(row.canonical).get("requirements", ())),
        advisories=row.advisories,
    )


def list_results(
    conn: Connection,
    run_id: int,
    *,
    status: str | None = None,
    platform: str | None = None,
    python: str | None = None,
    cuda: str | None = None,
    order: Sequence[FindingKind] = FINDING_KINDS,
) -> list[DriftResultRecord]:
    """A run's verdicts, most severe first (in `order`), then by input digest. `cuda=""` means CPU-only."""
    results = schema.drift_results
    statement = _result_statement().where(results.c.run_id == run_id).order_by(results.c.input_digest)
    if status is not None:
        statement = statement.where(results.c.status == status)
    statement = where_target(statement, platform=platform, python=python, cuda=cuda)
    found = [_result(row) for row in conn.execute(statement)]
    rank = {kind: n for n, kind in enumerate(order)}
    return sorted(found, key=lambda r: rank[r.status])


def latest_result(conn: Connection, input_digest: str) -> DriftResultRecord | None:
    """The lock's verdict in the newest complete run that checked it."""
    results, runs = schema.drift_results, schema.drift_runs
    statement = (
        _result_statement()
        .join(runs, runs.c.id == results.c.run_id)
        .where(and_(results.c.input_digest == input_digest, runs.c.status == "complete"))
        .order_by(results.c.run_id.desc())
        .limit(1)
    )
    row = conn.execute(statement).first()
    return None if row is None else _result(row)


def _version(text: str | None) -> Version | None:
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _finding(row: Any) -> Finding:
    change: ChangeKind | None = row.change
    return Finding(
        kind=row.kind,
        message=row.message,
        package=None if row.package is None else canonicalize_name(row.package),
        filename=row.filename,
        old_version=_version(row.old_version),
        new_version=_version(row.new_version),
        old_sha256=row.old_sha256,
        new_sha256=row.new_sha256,
        change=change,
        code=row.code,
        advisory=None if row.advisory is None else Vulnerability.from_json(json.loads(row.advisory)),
    )


def result_findings(conn: Connection, run_id: int, input_digest: str) -> list[Finding]:
    table = schema.drift_findings
    rows = conn.execute(
        select(table)
        .where(and_(table.c.run_id == run_id, table.c.input_digest == input_digest))
        .order_by(table.c.id)
    )
    return [_finding(row) for row in rows]


def run_findings(conn: Connection, run_id: int) -> list[tuple[str, Finding]]:
    """Every finding of a run as (input digest, finding), in the order they were stored."""
    table = schema.drift_findings
    rows = conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.id))
    return [(row.input_digest, _finding(row)) for row in rows]


def stale_cutoff(now: datetime, ttl: float) -> datetime:
    """Heartbeats older than this belong to a dead run."""
    return now - timedelta(seconds=ttl)
