"""Drift read views: runs, per-lock verdicts and findings as the API, dashboard and CLI show them.

The values here are what the service layer hands out about drift, converted from store rows
at this boundary (`DriftRunView.to_json` is also the body a webhook receives). A run left
`running` by a dead process reads as `abandoned` once its heartbeat is older than the drift
lease TTL, so no reader mistakes it for a run in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lockd.drift import AdvisoryStatus, Finding, FindingKind
from lockd.errors import NotFound
from lockd.service import Service
from lockd.store import drift as drift_store
from lockd.store import queries, transaction
from lockd.store.drift import DriftResultRecord, DriftRunRecord, RunStatus
from lockd.stored import Revision

__all__ = [
    "DriftLockView",
    "DriftResultView",
    "DriftRunView",
    "drift_findings",
    "drift_lock",
    "drift_results",
    "stale_before",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftRunView:
    """One drift run: its status, progress and the number of locks of each status."""

    id: int
    status: RunStatus
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    scheduled_for: datetime | None  # the tick a scheduled run serves
    duration_seconds: float | None
    locks_total: int
    locks_checked: int
    counts: Mapping[FindingKind, int]  # locks by status
    error: str | None
    advisories: AdvisoryStatus | None = None  # the run's advisory check; None before it existed
    advisories_error: str | None = None  # why it was unavailable

    @classmethod
    def of(cls, record: DriftRunRecord) -> DriftRunView:
        return cls(
            id=record.id,
            status=record.status,
            trigger=record.trigger,
            started_at=record.started_at,
            finished_at=record.finished_at,
            scheduled_for=record.scheduled_for,
            duration_seconds=record.duration_seconds,
            locks_total=record.locks_total,
            locks_checked=record.locks_checked,
            counts=dict(record.counts),
            error=record.error,
            advisories=record.advisories,
            advisories_error=record.advisories_error,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON a webhook receives and `lockd drift run` prints."""
        return {
            "run_id": self.id,
            "status": self.status,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
            "locks_total": self.locks_total,
            "locks_checked": self.locks_checked,
            "counts": dict(self.counts),
            "error": self.error,
            "advisories": {"status": self.advisories, "error": self.advisories_error},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftResultView:
    """One lock's verdict in one run, with what a listing shows about the lock."""

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
    advisories: AdvisoryStatus | None = None  # whether this lock's advisory check ran

    @classmethod
    def of(cls, record: DriftResultRecord) -> DriftResultView:
        return cls(
            run_id=record.run_id,
            input_digest=record.input_digest,
            revision=record.revision,
            lock_digest=record.lock_digest,
            status=record.status,
            fresh_lock_digest=record.fresh_lock_digest,
            checked_at=record.checked_at,
            platform=record.platform,
            python=record.python,
            cuda=record.cuda,
            package_count=record.package_count,
            lock_created_at=record.lock_created_at,
            requirements=record.requirements,
            advisories=record.advisories,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftLockView:
    """One lock on the dashboard: its latest verdict, its findings, its revisions."""

    result: DriftResultView
    findings: tuple[Finding, ...]
    revisions: tuple[Revision, ...]
    run: DriftRunView


def stale_before(service: Service) -> datetime:
    """Heartbeats older than this belong to a dead run."""
    return drift_store.stale_cutoff(datetime.now(UTC), service.settings.drift_lease_ttl)


def drift_results(
    service: Service,
    run_id: int,
    *,
    status: str | None = None,
    platform: str | None = None,
    python: str | None = None,
    cuda: str | None = None,
) -> list[DriftResultView]:
    """A run's verdicts, most severe first, then by input digest. `cuda=""` means CPU-only."""
    with transaction(service.engine, write=False) as conn:
        found = drift_store.list_results(
            conn,
            run_id,
            status=status,
            platform=platform,
            python=python,
            cuda=cuda,
            order=service.settings.severity_order,
        )
    return [DriftResultView.of(record) for record in found]


def drift_findings(service: Service, run_id: int) -> list[tuple[str, Finding]]:
    """Every finding of a run as (input digest, finding), in the order they were stored."""
    with transaction(service.engine, write=False) as conn:
        return drift_store.run_findings(conn, run_id)


def drift_lock(service: Service, input_digest: str) -> DriftLockView:
    """The latest complete verdict on one stored input, or `NotFound` if no run checked it yet."""
    with transaction(service.engine, write=False) as conn:
        result = drift_store.latest_result(conn, input_digest)
        if result is None:
            raise NotFound(
                f"no drift result for input {input_digest}",
                hint="run `lockd drift run` (or POST /v1/drift/runs) first",
                context={"input_digest": input_digest},
            )
        findings = drift_store.result_findings(conn, result.run_id, input_digest)
        revisions = queries.list_revisions(conn, input_digest)
        run = drift_store.get_run(conn, result.run_id)
    assert run is not None
    return DriftLockView(
        result=DriftResultView.of(result),
        findings=tuple(findings),
        revisions=tuple(Revision.of(record) for record in revisions),
        run=DriftRunView.of(run),
    )
