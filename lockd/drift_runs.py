"""Drift runs: check every stored lock against the index, store the verdicts, call the webhook.

`lockd.drift` compares; `DriftRuns` wires it to the store, the index and the webhook. One run
at a time across replicas: a run takes the drift lease (`lockd.leases`) without waiting and
renews it, with the run's heartbeat, every LOCKD_DRIFT_LEASE_TTL / 4 seconds; a run whose
heartbeat is older than the TTL is dead (killed, OOM, power loss) and is shown and recorded as
abandoned. The locks are checked on a small thread pool and each verdict is stored as it
arrives. `run` runs in the caller's thread (the CLI, the scheduler); `start` runs in the
background and answers once the run is recorded (the HTTP API).

A run first retires unused names (`lockd.retirement`) and skips retired inputs. A fresh
resolution that differs from the stored lock is stored and proposed (`lockd.proposals`) with
the run's findings as its reasons, in the transaction that stores the verdict; the webhook is
`lockd.drift_webhook`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import Connection

from lockd.drift import (
    FINDING_KINDS,
    DriftReport,
    DriftRunInProgress,
    Finding,
    FindingKind,
    check_files,
    drift_for,
)
from lockd.drift_views import DriftRunView, stale_before
from lockd.drift_webhook import notify
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.inputs import LockRequest
from lockd.leases import HeldLease, Leases
from lockd.lock import Lock
from lockd.periodic import Periodic
from lockd.proposals import propose
from lockd.retirement import retire_unused
from lockd.service import Service, render_files
from lockd.store import LockFileRecord, LockSummary, queries, transaction
from lockd.store import drift as drift_store
from lockd.store import names as name_rows

__all__ = ["DriftRuns"]

log = logging.getLogger(__name__)

_DRIFT_PAGE_SIZE = 500
_LEASE_KEY = "drift"


class _Checked:
    """One lock's verdict, and the fresh lock (rendered) when it differs from the stored one."""

    def __init__(self, report: DriftReport, fresh: Lock | None) -> None:
        self.report = report
        self.fresh = fresh
        self.files: builtins.list[LockFileRecord] = [] if fresh is None else render_files(fresh)


class _Progress:
    """How far a run has got, shared by its workers, its heartbeat and its lease."""

    def __init__(self, run_id: int, lease: HeldLease) -> None:
        self.run_id = run_id
        self.lease = lease
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
        retired = retire_unused(self._service)
        if retired.names:
            log.info("retired unused names %s", ", ".join(retired.names))
        inputs = self._stored_inputs()
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
        factory = index_factory or self._service.fresh_index
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
        notify(self._service, view)
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
        return _Progress(run_id, lease)

    def _stored_inputs(self) -> builtins.list[LockSummary]:
        """Every live input: retired ones (no name points at them any longer) are out of drift."""
        found: builtins.list[LockSummary] = []
        after: str | None = None
        while True:
            with transaction(self._service.engine, write=False) as conn:
                page = queries.list_locks(conn, limit=_DRIFT_PAGE_SIZE, after=after)
                retired = name_rows.retired_digests(conn)
            found.extend(summary for summary in page if summary.input_digest not in retired)
            if len(page) < _DRIFT_PAGE_SIZE:
                return found
            after = page[-1].input_digest

    def _drift_index(self) -> IndexClient:
        settings = self._service.settings
        # Fresh at the start of the run, shared within it.
        options = replace(settings.client_options(), page_ttl=max(settings.page_ttl, 3600.0))
        return IndexClient.from_options(options, metadata_cache=self._service.metadata_cache)

    def _check_one(self, summary: LockSummary, index: IndexClient) -> _Checked:
        """Both halves of drift for one lock. Never raises a LockdError: failures become findings."""
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
        report = drift_for(lock, fresh, file_findings)
        changed = isinstance(fresh, Lock) and fresh.digest != lock.digest
        return _Checked(report, fresh if changed and isinstance(fresh, Lock) else None)

    def _check_all(
        self, run: _Progress, inputs: builtins.list[LockSummary], index: IndexClient, *, workers: int
    ) -> None:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"lockd-drift-{run.run_id}")
        try:
            futures: dict[Future[_Checked], LockSummary] = {
                pool.submit(self._check_one, summary, index): summary for summary in inputs
            }
            for future in as_completed(futures):
                summary = futures[future]
                checked = future.result()
                report = checked.report
                with transaction(self._service.engine, write=True) as conn:
                    now = datetime.now(UTC)
                    drift_store.put_report(conn, run.run_id, summary.revision, report, now=now)
                    if checked.fresh is not None:
                        self._propose(conn, summary, checked, now)
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

    def _propose(self, conn: Connection, summary: LockSummary, checked: _Checked, now: datetime) -> None:
        """The fresh resolution as a proposal against the revision this run checked."""
        assert checked.fresh is not None
        self._service.put_lock(conn, checked.fresh, checked.files, now)
        propose(
            conn,
            input_digest=summary.input_digest,
            new=checked.fresh,
            findings=checked.report.findings,
            source="drift",
            actor=None,
            default_policy=self._service.settings.auto_promote,
            now=now,
            base_revision=summary.revision,
        )

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
            )
            run.lease.release(conn)
            record = drift_store.get_run(conn, run.run_id)
        assert record is not None
        return DriftRunView.of(record)

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
