"""The drift resource: start a run (admin), read the latest run or one run, and its gauges.

`POST /v1/drift/runs` answers 202 as soon as the run is recorded (the run continues on a
thread of its own; poll `Location`), or 200 with the finished run when `?wait=true`. Runs
never overlap: a second request while one is running is 409 `drift-run-in-progress`.
`GET /v1/drift` is the newest *complete* run; a run in progress or one cut short by a crash
is never shown in its place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel

from lockd.drift import FINDING_KINDS, Finding
from lockd.drift_runs import DriftRuns
from lockd.drift_views import DriftResultView, DriftRunView, drift_findings, drift_results
from lockd.errors import LockdError, NotFound
from lockd.http.deps import DriftRunsDep, ServiceDep, in_read_thread, in_thread, requires
from lockd.http.problems import ERROR_RESPONSES, PROBLEM_SCHEMA
from lockd.service import Service

__all__ = ["DriftCollector", "FindingOut", "LockDriftOut", "RunOut", "RunSummaryOut", "router"]

router = APIRouter(tags=["drift"])


class FindingOut(BaseModel):
    kind: str
    message: str
    package: str | None = None
    filename: str | None = None
    old_version: str | None = None
    new_version: str | None = None
    old_sha256: str | None = None
    new_sha256: str | None = None
    change: str | None = None
    code: str | None = None
    advisory: dict[str, Any] | None = None  # for `vulnerable`: ids, severity, fixed versions, url

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        return cls(
            kind=finding.kind,
            message=finding.message,
            package=finding.package,
            filename=finding.filename,
            old_version=None if finding.old_version is None else str(finding.old_version),
            new_version=None if finding.new_version is None else str(finding.new_version),
            old_sha256=finding.old_sha256,
            new_sha256=finding.new_sha256,
            change=finding.change,
            code=finding.code,
            advisory=None if finding.advisory is None else finding.advisory.to_json(),
        )


class LockDriftOut(BaseModel):
    input_digest: str
    revision: int
    lock_digest: str
    status: str
    fresh_lock_digest: str | None
    target: dict[str, str | None]
    package_count: int
    checked_at: str
    advisories: str | None  # this lock's advisory check: checked, unavailable, off
    links: dict[str, str]
    findings: list[FindingOut]


class RunSummaryOut(BaseModel):
    id: int
    status: str
    trigger: str
    started_at: str
    finished_at: str | None
    duration_seconds: float | None
    locks_total: int
    locks_checked: int
    counts: dict[str, int]
    error: str | None
    advisories: dict[str, str | None]  # the run's advisory check: its status, and why unavailable
    links: dict[str, str]


class RunOut(BaseModel):
    run: RunSummaryOut
    locks: list[LockDriftOut]


def _summary(record: DriftRunView) -> RunSummaryOut:
    return RunSummaryOut(
        id=record.id,
        status=record.status,
        trigger=record.trigger,
        started_at=record.started_at.isoformat(),
        finished_at=None if record.finished_at is None else record.finished_at.isoformat(),
        duration_seconds=record.duration_seconds,
        locks_total=record.locks_total,
        locks_checked=record.locks_checked,
        counts=dict(record.counts),
        error=record.error,
        advisories={"status": record.advisories, "error": record.advisories_error},
        links={"self": f"/v1/drift/runs/{record.id}", "dashboard": "/dashboard"},
    )


def _lock_out(result: DriftResultView, findings: list[Finding]) -> LockDriftOut:
    digest = result.input_digest
    return LockDriftOut(
        input_digest=digest,
        revision=result.revision,
        lock_digest=result.lock_digest,
        status=result.status,
        fresh_lock_digest=result.fresh_lock_digest,
        target={"platform": result.platform, "python": result.python, "cuda": result.cuda},
        package_count=result.package_count,
        checked_at=result.checked_at.isoformat(),
        advisories=result.advisories,
        links={
            "lock": f"/v1/locks/{digest}",
            "revision": f"/v1/locks/{digest}/revisions/{result.revision}",
            "dashboard": f"/dashboard/locks/{digest}",
        },
        findings=[FindingOut.of(f) for f in findings],
    )


def _run_out(service: Service, record: DriftRunView) -> RunOut:
    results = drift_results(service, record.id)
    by_lock: dict[str, list[Finding]] = {}
    for digest, finding in drift_findings(service, record.id):
        by_lock.setdefault(digest, []).append(finding)
    return RunOut(
        run=_summary(record),
        locks=[_lock_out(result, by_lock.get(result.input_digest, [])) for result in results],
    )


@router.post(
    "/v1/drift/runs",
    response_model=RunOut,
    status_code=202,
    dependencies=[Depends(requires("admin"))],
    summary="Start a drift run over every stored lock",
    responses={
        200: {"model": RunOut, "description": "the finished run (with `wait=true`)"},
        409: {
            "description": "Another drift run is in progress",
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
        },
        **ERROR_RESPONSES,
    },
)
async def start_drift_run(
    request: Request,
    response: Response,
    service: ServiceDep,
    runs: DriftRunsDep,
    wait: Annotated[bool, Query(description="answer when the run has finished")] = False,
) -> RunOut:
    record = await in_thread(request, lambda: runs.start(trigger="api", wait=wait))
    response.headers["Location"] = f"/v1/drift/runs/{record.id}"
    if wait:
        response.status_code = 200
        return await in_read_thread(request, lambda: _run_out(service, record))
    return RunOut(run=_summary(record), locks=[])


@router.get(
    "/v1/drift",
    response_model=RunOut,
    dependencies=[Depends(requires("read"))],
    summary="The latest complete drift run with its findings",
    responses=ERROR_RESPONSES,
)
async def latest_drift(request: Request, service: ServiceDep, runs: DriftRunsDep) -> RunOut:
    def load() -> RunOut:
        record = runs.latest()
        if record is None:
            raise NotFound(
                "no drift run has completed yet", hint="POST /v1/drift/runs or run `lockd drift run`"
            )
        return _run_out(service, record)

    return await in_read_thread(request, load)


@router.get(
    "/v1/drift/runs/{run_id}",
    response_model=RunOut,
    dependencies=[Depends(requires("read"))],
    summary="One drift run (any status) with its findings",
    responses=ERROR_RESPONSES,
)
async def get_drift_run(
    request: Request,
    service: ServiceDep,
    runs: DriftRunsDep,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> RunOut:
    return await in_read_thread(request, lambda: _run_out(service, runs.get(run_id)))


class DriftCollector:
    """Gauges of the newest complete run, read from the database at scrape time.

    Read at scrape time because runs happen in other processes too (`lockd drift run` from
    cron); a gauge set in-process would show this replica's last run, not the latest one.
    """

    def __init__(self, runs: DriftRuns) -> None:
        self._runs = runs

    def collect(self) -> Iterator[Any]:
        try:
            record = self._runs.latest()
        except LockdError:
            return  # the database is down: /readyz says so; absent gauges beat wrong ones
        locks = GaugeMetricFamily(
            "lockd_drift_locks", "Locks by drift status in the latest complete run", labels=["status"]
        )
        for kind in FINDING_KINDS:
            locks.add_metric([kind], 0 if record is None else record.counts[kind])
        yield locks
        if record is None or record.finished_at is None:
            return
        yield GaugeMetricFamily(
            "lockd_drift_last_run_timestamp_seconds",
            "When the latest complete drift run finished (Unix time)",
            value=record.finished_at.timestamp(),
        )
        yield GaugeMetricFamily(
            "lockd_drift_last_run_duration_seconds",
            "How long the latest complete drift run took",
            value=record.duration_seconds or 0.0,
        )
