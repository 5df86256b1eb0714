"""Drift runs: check every stored lock against the index, store the verdicts, call the webhook.

`lockd.drift` compares; `DriftRuns` wires it to the store, the index and the webhook. One run
at a time across replicas: a run takes the drift lease (`lockd.leases`) without waiting and
renews it, with the run's heartbeat, every LOCKD_DRIFT_LEASE_TTL / 4 seconds; a run whose
heartbeat is older than the TTL is dead (killed, OOM, power loss) and is shown and recorded as
abandoned. The locks are checked on a small thread pool and each verdict is stored as it
arrives. Each lock is also checked against the advisory sources (`lockd.advisory_check`); a
source that cannot answer makes the run's advisory check `unavailable`, recorded with why. `run` runs in the caller's thread (the CLI, the scheduler); `start` runs in the
background and answers once the run is recorded (the HTTP API).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime

import httpx
from sqlalchemy import Connection

from lockd.advisory_check import RunAdvisories
from lockd.drift import (
    ALERT_KINDS,
    FINDING_KINDS,
    DriftReport,
    DriftRunInProgress,
    Finding,
    FindingKind,
    check_files,
    drift_for,
)
from lockd.drift_views import DriftRunView, stale_before
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.inputs import LockRequest
from lockd.leases import HeldLease, Leases
from lockd.lock import Lock
from lockd.periodic import Periodic
from lockd.service import Service
from lockd.standalone import index_client
from lockd.store import LockSummary, queries, transaction
from lockd.store import drift as drift_store

__all__ = ["DriftRuns"]

log = logging.getLogger(__name__)

_DRIFT_PAGE_SIZE = 500
_WEBHOOK_TIMEOUT = 10.0
_LEASE_KEY = "drift"


class _Progress:
    """How far a run has got, shared by its workers, its heartbeat and its lease."""

    def __init__(self, run_id: int, lease: HeldLease, advisories: RunAdvisories) -> None:
        self.run_id = run_id
        self.lease = lease
        self.advisories = advisories
        self.checked = 0
        self.counts: dict[FindingKind, int] = dict.fromkeys(FINDING_KINDS, 0)

    def heartbeat(self, conn: Connection) -> None:
        drift_store.heartbeat(conn, self.run_id, now=datetime.now(UTC), locks_checked=self.checked)


class _Start:
    """A run started in the background: who waits for it learns its id, then its end."""

    def __init__(self) -> None:
        self.run_id: int | None = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.finished = threading.Event()

    def recorded(self, run_id: int) -> None:
        self.run_id = run_id
        self.started.set()


class DriftRuns:
    """Drift runs over one service's database and index settings. Thread-safe."""

    def __init__(self, service: Service) -> None:
        self._service = service

    # -- running ----------------------------------------------------------------------------

    def start(self, *, trigger: str = "api", wait: bool = False) -> DriftRunView:
        """Start a run in the background; answer once it is recorded, or once it ended with `wait`.

        Raises `DriftRunInProgress` if another run holds the lease, and the run's error when
        it failed (with `wait`) or could not start.
        """
        start = _Start()

        def body() -> bool:
            try:
                self.run(trigger=trigger, on_started=start.recorded)
            except LockdError as exc:
                start.error = exc
                if start.run_id is not None:
                    log.error("drift run %s failed: %s", start.run_id, exc.message)
            except BaseException as exc:
                start.error = exc
                log.exception("drift run crashed")
            finally:
                start.started.set()
                start.finished.set()
            return False  # once

        Periodic(f"lockd-drift-{trigger}", 0.0, body, first_delay=0.0).start()
        (start.finished if wait else start.started).wait()
        if start.run_id is None or (wait and start.error is not None):
            if isinstance(start.error, LockdError):
                raise start.error
            raise LockdError("the drift run failed to start") from start.error
        return self.get(start.run_id)

    def run(
        self,
        *,
        trigger: str = "cli",
        scheduled_for: datetime | None = None,
        workers: int | None = None,
        lease_ttl: float | None = None,
        index_factory: Callable[[], IndexClient] | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> DriftRunView | None:
        """One drift run over every stored input's current revision; stored, then returned.

        Raises `DriftRunInProgress` if another run (in any replica) holds the lease. With
        `scheduled_for`, returns None without running when a run already started since that tick.
        `on_started(run_id)` is called once the run is recorded. The index is read through a
        client of its own, so no page cached before the run hides a change; metadata is still
        shared through the database cache (it is keyed by file hash).
        """
        settings = self._service.settings
        workers = workers or settings.drift_workers
        ttl = lease_ttl or settings.drift_lease_ttl
        inputs = self._stored_inputs()
        self._service.advisories.refresh()  # the operator's latest sync of the advisory directory
        begun = self._begin(
            Leases(self._service.engine, "drift", ttl=ttl, renew_every=ttl / 4),
            trigger,
            scheduled_for,
            len(inputs),
        )
        if begun is None:
            log.info("drift tick %s already covered by another run", scheduled_for)
            return None
        if on_started is not None:
            on_started(begun.run_id)
        started = time.monotonic()
        log.info(
            "drift run %s started (%s): %d locks, %d workers", begun.run_id, trigger, len(inputs), workers
        )
        factory = index_factory or self._drift_index
        try:
            with begun.lease.renewing(also=begun.heartbeat), factory() as index:
                self._check_all(begun, inputs, index, workers=workers)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._finish(begun, status="failed", started=started, error=error)
            log.error("drift run %s failed: %s", begun.run_id, error)
            raise
        view = self._finish(begun, status="complete", started=started, error=None)
        log.info(
            "drift run %s complete in %.1f s: %s",
            view.id,
            view.duration_seconds or 0.0,
            ", ".join(f"{kind} {n}" for kind, n in view.counts.items() if n),
        )
        self._notify(view)
        return view

    def _begin(
        self, leases: Leases, trigger: str, scheduled_for: datetime | None, total: int
    ) -> _Progress | None:
        """Take the lease, retire dead runs and record ours; None when `scheduled_for` is already covered."""
        with transaction(self._service.engine, write=True) as conn:
            lease = leases.try_take(_LEASE_KEY, budget=None, conn=conn)
            if lease is None:
                raise DriftRunInProgress(
                    "another drift run is in progress",
                    hint="wait for it to finish: GET /v1/drift shows the latest run",
                )
            abandoned = drift_store.abandon_stale_runs(conn, now=datetime.now(UTC))
            if abandoned:
                log.warning("drift runs %s were interrupted and are marked abandoned", abandoned)
            if scheduled_for is not None and drift_store.run_covers(conn, scheduled_for):
                lease.release(conn)
                return None
            run_id = drift_store.start_run(
                conn,
                trigger=trigger,
                holder=lease.holder,
                now=datetime.now(UTC),
                locks_total=total,
                scheduled_for=scheduled_for,
            )
        return _Progress(run_id, lease, self._service.advisories.for_run())

    def _stored_inputs(self) -> builtins.list[LockSummary]:
        found: builtins.list[LockSummary] = []
        after: str | None = None
        while True:
            with transaction(self._service.engine, write=False) as conn:
                page = queries.list_locks(conn, limit=_DRIFT_PAGE_SIZE, after=after)
            found.extend(page)
            if len(page) < _DRIFT_PAGE_SIZE:
                return found
            after = page[-1].input_digest

    def _drift_index(self) -> IndexClient:
        settings = self._service.settings
        # Fresh at the start of the run, shared within it.
        return index_client(
            settings, page_ttl=max(settings.page_ttl, 3600.0), metadata_cache=self._service.metadata_cache
        )

    def _check_one(self, summary: LockSummary, index: IndexClient, advisories: RunAdvisories) -> DriftReport:
        """Files, a fresh resolution and advisories for one lock. Never raises a LockdError: failures become findings."""
        with transaction(self._service.engine, write=False) as conn:
            canonical = queries.get_lock_canonical(conn, summary.lock_digest)
            stored = queries.get_input(conn, summary.input_digest)
        if canonical is None or stored is None:
            raise NotFound(f"lock {summary.lock_digest} vanished during the drift run")
        lock = Lock.from_json(canonical)
        try:
            file_findings = check_files(lock, index)
        except LockdError as exc:
            message = f"could not re-check the pinned files: {exc.message}"
            file_findings = [Finding(kind="unresolvable", message=message, code=exc.code)]
        fresh: Lock | LockdError
        try:
            fresh, _stats = self._service.resolve_in_budget(LockRequest.from_json(stored.canonical), index)
        except LockdError as exc:
            fresh = exc
        answer = advisories.check(lock)
        return drift_for(
            lock,
            fresh,
            file_findings,
            vulnerabilities=answer.vulnerabilities,
            advisories=answer.status,
            order=self._service.settings.severity_order,
        )

    def _check_all(
        self, run: _Progress, inputs: builtins.list[LockSummary], index: IndexClient, *, workers: int
    ) -> None:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"lockd-drift-{run.run_id}")
        try:
            futures: dict[Future[DriftReport], LockSummary] = {
                pool.submit(self._check_one, summary, index, run.advisories): summary for summary in inputs
            }
            for future in as_completed(futures):
                summary = futures[future]
                report = future.result()
                with transaction(self._service.engine, write=True) as conn:
                    drift_store.put_report(conn, run.run_id, summary.revision, report, now=datetime.now(UTC))
                run.counts[report.status] += 1
                run.checked += 1
                log.info(
                    "drift run %s: %d/%d locks checked; %s is %s",
                    run.run_id,
                    run.checked,
                    len(inputs),
                    summary.input_digest[:12],
                    report.status,
                )
                if run.lease.lost:
                    raise DriftRunInProgress("the drift lease was lost to another run; this run stops")
        finally:
            # On failure, do not wait for locks nobody will record.
            pool.shutdown(wait=True, cancel_futures=True)

    def _finish(
        self, run: _Progress, *, status: drift_store.RunStatus, started: float, error: str | None
    ) -> DriftRunView:
        with transaction(self._service.engine, write=True) as conn:
            drift_store.finish_run(
                conn,
                run.run_id,
                status=status,
                now=datetime.now(UTC),
                duration_seconds=time.monotonic() - started,
                counts=run.counts,
                locks_checked=sum(run.counts.values()),
                error=error,
                advisories=run.advisories.status,
                advisories_error=run.advisories.error,
            )
            run.lease.release(conn)
            record = drift_store.get_run(conn, run.run_id)
        assert record is not None
        return DriftRunView.of(record)

    def _notify(self, run: DriftRunView) -> None:
        """POST the summary to the configured webhook when something needs a human. Never fatal."""
        url = self._service.settings.webhook_url
        if url is None or not any(run.counts[kind] for kind in ALERT_KINDS):
            return
        alerts = sorted(kind for kind in ALERT_KINDS if run.counts[kind])
        body = {
            "event": "lockd.drift",
            "alert_kinds": alerts,
            **run.to_json(),
            "vulnerable": self._vulnerable(run),
        }
        # Only the origin is logged: a webhook's path or userinfo is often its secret (Slack, Teams).
        origin = httpx.URL(url).copy_with(userinfo=b"", path="/", query=None, fragment=None)
        try:
            response = httpx.post(url, json=body, timeout=_WEBHOOK_TIMEOUT)
        except httpx.HTTPError as exc:
            log.warning("drift webhook %s failed: %s", origin, type(exc).__name__)
            return
        if response.status_code >= 400:
            log.warning("drift webhook %s answered HTTP %d", origin, response.status_code)
        else:
            log.info("drift webhook delivered for run %s", run.id)

    def _vulnerable(self, run: DriftRunView) -> builtins.list[dict[str, object]]:
        """The run's `vulnerable` findings for the webhook: which lock, which pin, which advisory."""
        with transaction(self._service.engine, write=False) as conn:
            findings = drift_store.run_findings(conn, run.id)
        return [
            {"input_digest": digest, "message": finding.message, **finding.advisory.to_json()}
            for digest, finding in findings
            if finding.advisory is not None
        ]

    # -- reading ----------------------------------------------------------------------------

    def get(self, run_id: int) -> DriftRunView:
        with transaction(self._service.engine, write=False) as conn:
            record = drift_store.get_run(conn, run_id, stale_before=stale_before(self._service))
        if record is None:
            raise NotFound(f"no drift run {run_id}", context={"run_id": run_id})
        return DriftRunView.of(record)

    def latest(self, *, complete_only: bool = True) -> DriftRunView | None:
        """The newest complete run (what `drift check` and the dashboard judge by), or the newest of any status."""
        statuses: tuple[drift_store.RunStatus, ...] | None = ("complete",) if complete_only else None
        with transaction(self._service.engine, write=False) as conn:
            record = drift_store.latest_run(conn, statuses=statuses, stale_before=stale_before(self._service))
        return None if record is None else DriftRunView.of(record)

    def list(self, *, limit: int = 30) -> builtins.list[DriftRunView]:
        """The newest `limit` runs, oldest first (the order a history chart reads in)."""
        with transaction(self._service.engine, write=False) as conn:
            found = drift_store.list_runs(conn, limit=limit, stale_before=stale_before(self._service))
        return [DriftRunView.of(record) for record in found]
