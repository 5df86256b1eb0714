"""Drift runs: check every stored lock against the index, store the verdicts, call the webhook.

`lockd.drift` compares; `DriftRuns` wires it to the store, the index and the webhook. One run
at a time across replicas: a run takes the drift lease (`lockd.leases`) without waiting and
renews it, with the run's heartbeat, every LOCKD_DRIFT_LEASE_TTL / 4 seconds; a run whose
heartbeat is older than the TTL is dead (killed, OOM, power loss) and is shown and recorded as
abandoned. The run's locks are written as batches that every replica may claim
(`lockd.drift_checks`): the replica that started the run checks batches too and finishes the
run once all are done; other replicas join through `help_running` (`lockd.scheduler` calls it
every LOCKD_DRIFT_HELP_INTERVAL seconds on PostgreSQL), so N replicas take about 1/N of the
time. Counts and progress are read from the verdicts in the database, whoever stored them.
Each replica checks LOCKD_DRIFT_WORKERS locks at a time. Each lock has its own budget (LOCKD_DRIFT_LOCK_TIMEOUT), past which it is reported
unresolvable and not waited for (`lockd.work_deadlines`): one lock that an index never finishes
serving cannot hold the run, nor the drift lease and so every later run. Each lock is also
checked against the advisory sources (`lockd.advisory_check`); a source that cannot answer
makes the run's advisory check `unavailable`, recorded with why.
`run` runs in the caller's thread (the CLI, the scheduler); `start` runs in the
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
from datetime import UTC, datetime

from sqlalchemy import Connection

from lockd.advisory_check import RunAdvisories
from lockd.drift import (
    DriftRunInProgress,
)
from lockd.drift_checks import BatchChecker
from lockd.drift_views import DriftRunView, stale_before
from lockd.drift_webhook import notify
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.leases import HeldLease, Leases
from lockd.periodic import Periodic
from lockd.retirement import retire_unused
from lockd.service import Service
from lockd.store import drift as drift_store
from lockd.store import drift_batches as batches
from lockd.store import names as name_rows
from lockd.store import queries, transaction
from lockd.store.drift_batches import BatchLock

__all__ = ["DriftRuns"]

log = logging.getLogger(__name__)

_DRIFT_PAGE_SIZE = 500
_LEASE_KEY = "drift"
# Locks per claimed batch: small enough that N replicas finish together, large enough that
# claiming (one write transaction) is noise next to checking.
_BATCH_SIZE = 25


class _Progress:
    """How far a run has got, shared by its workers, its heartbeat and its lease."""

    def __init__(self, run_id: int, lease: HeldLease, advisories: RunAdvisories) -> None:
        self.run_id = run_id
        self.lease = lease
        self.advisories = advisories

    def heartbeat(self, conn: Connection) -> None:
        # Verdicts of every replica count: they are all in the database.
        checked = sum(batches.verdict_counts(conn, self.run_id).values())
        drift_store.heartbeat(conn, self.run_id, now=datetime.now(UTC), locks_checked=checked)


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
        self._leading: set[int] = set()  # runs this object started: it works on them already

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
        batch_size: int = _BATCH_SIZE,
    ) -> DriftRunView | None:
        """One drift run over every stored input's current revision; stored, then returned.

        Raises `DriftRunInProgress` if another run (in any replica) holds the lease. With
        `scheduled_for`, returns None without running when a run already started since that tick.
        `on_started(run_id)` is called once the run is recorded. The index is read through a
        client of its own, so no page cached before the run hides a change; metadata is still
        shared through the database cache (it is keyed by file hash). Other replicas may claim
        batches of the run meanwhile (`help_running`); this one checks batches too, and
        finishes the run once every batch is done, taking over those whose claim expired.
        """
        settings = self._service.settings
        workers = workers or settings.drift_workers
        ttl = lease_ttl or settings.drift_lease_ttl
        retired = retire_unused(self._service)
        if retired.names:
            log.info("retired unused names %s", ", ".join(retired.names))
        inputs = self._stored_inputs()
        self._service.advisories.refresh()  # the operator's latest sync of the advisory directory
        begun = self._begin(
            Leases(self._service.engine, "drift", ttl=ttl, renew_every=ttl / 4),
            trigger,
            scheduled_for,
            inputs,
            batch_size,
        )
        if begun is None:
            log.info("drift tick %s already covered by another run", scheduled_for)
            return None
        self._leading.add(begun.run_id)
        if on_started is not None:
            on_started(begun.run_id)
        started = time.monotonic()
        log.info(
            "drift run %s started (%s): %d locks, %d workers", begun.run_id, trigger, len(inputs), workers
        )
        factory = index_factory or self._service.fresh_index
        try:
            with begun.lease.renewing(also=begun.heartbeat), factory() as index:
                BatchChecker(self._service).work(
                    begun.run_id, index, begun.advisories, workers=workers, claim_ttl=ttl, lease=begun.lease
                )
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._finish(begun, status="failed", started=started, error=error)
            log.error("drift run %s failed: %s", begun.run_id, error)
            raise
        finally:
            self._leading.discard(begun.run_id)
        view = self._finish(begun, status="complete", started=started, error=None)
        log.info(
            "drift run %s complete in %.1f s: %s",
            view.id,
            view.duration_seconds or 0.0,
            ", ".join(f"{kind} {n}" for kind, n in view.counts.items() if n),
        )
        notify(self._service, view)
        return view

    def help_running(
        self,
        *,
        workers: int | None = None,
        claim_ttl: float | None = None,
        index_factory: Callable[[], IndexClient] | None = None,
    ) -> int | None:
        """Check batches of the run in progress (started by any replica) until none is left to
        claim; returns the run's id, or None when no live run has a batch to claim."""
        settings = self._service.settings
        ttl = claim_ttl or settings.drift_lease_ttl
        now = datetime.now(UTC)
        with transaction(self._service.engine, write=False) as conn:
            run_id = batches.run_to_help(conn, now=now, alive_since=drift_store.stale_cutoff(now, ttl))
        if run_id is None or run_id in self._leading:
            return None
        log.info("drift run %s: helping with its batches", run_id)
        self._service.advisories.refresh()
        factory = index_factory or self._service.fresh_index
        with factory() as index:
            advisories = self._service.advisories.for_run()
            BatchChecker(self._service).work(
                run_id, index, advisories, workers=workers or settings.drift_workers, claim_ttl=ttl
            )
        return run_id

    def _begin(
        self,
        leases: Leases,
        trigger: str,
        scheduled_for: datetime | None,
        inputs: builtins.list[BatchLock],
        batch_size: int,
    ) -> _Progress | None:
        """Take the lease, retire dead runs and record ours with its batches; None when
        `scheduled_for` is already covered."""
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
                locks_total=len(inputs),
                scheduled_for=scheduled_for,
            )
            batches.put_batches(conn, run_id, inputs, size=batch_size)
        return _Progress(run_id, lease, self._service.advisories.for_run())

    def _stored_inputs(self) -> builtins.list[BatchLock]:
        """Every live input: retired ones (no name points at them any longer) are out of drift."""
        found: builtins.list[BatchLock] = []
        after: str | None = None
        while True:
            with transaction(self._service.engine, write=False) as conn:
                page = queries.list_locks(conn, limit=_DRIFT_PAGE_SIZE, after=after)
                retired = name_rows.retired_digests(conn)
            found.extend(
                BatchLock(summary.input_digest, summary.revision, summary.lock_digest)
                for summary in page
                if summary.input_digest not in retired
            )
            if len(page) < _DRIFT_PAGE_SIZE:
                return found
            after = page[-1].input_digest

    def _finish(
        self, run: _Progress, *, status: drift_store.RunStatus, started: float, error: str | None
    ) -> DriftRunView:
        with transaction(self._service.engine, write=True) as conn:
            counts = batches.verdict_counts(conn, run.run_id)
            drift_store.finish_run(
                conn,
                run.run_id,
                status=status,
                now=datetime.now(UTC),
                duration_seconds=time.monotonic() - started,
                counts=counts,
                locks_checked=sum(counts.values()),
                error=error,
                advisories=run.advisories.status,
                advisories_error=run.advisories.error,
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
