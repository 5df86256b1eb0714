"""One replica's share of a drift run: claim batches of its locks, check them, store the verdicts.

`lockd.drift_runs` starts and finishes runs; `BatchChecker.work` is what every replica working
on a run does, the one that started it included. It claims one batch at a time
(`lockd.store.drift_batches`), keeps the claim alive while it checks (every `claim_ttl / 4`
seconds, like the drift lease), checks the batch's locks `workers` at a time, each within its
own budget (`lockd.work_deadlines`), and writes verdicts `_FLUSH_EVERY` to a transaction. A
lock that already has a verdict (its batch was taken over from a replica that died after
storing part of it) is not checked again. A batch's stored locks and inputs are read in one
transaction, and every resolution runs its prefetches on the service's fetch threads
(`Service.fresh_index`, `lockd.index.threads`), started once per process, not once per lock. The
replica that holds the run's lease stays until every batch is done, so a batch whose replica
died is taken over once its claim expires.
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from lockd.advisory_check import RunAdvisories
from lockd.drift import DriftReport, DriftRunInProgress, Finding, check_files, drift_for
from lockd.errors import IndexUnavailable, LockdError, NotFound, ResolutionTimeout
from lockd.index import IndexClient
from lockd.inputs import LockRequest
from lockd.leases import HeldLease
from lockd.lock import Lock
from lockd.periodic import Periodic
from lockd.proposals import propose
from lockd.service import Service, render_files
from lockd.store import LockFileRecord, transaction
from lockd.store import drift as drift_store
from lockd.store import drift_batches as batches
from lockd.store.drift_batches import BatchLock, BatchRows, ClaimedBatch
from lockd.work_deadlines import run_within_deadlines

__all__ = ["BatchChecker"]

log = logging.getLogger("lockd.drift_runs")

# Verdicts are written up to `_FLUSH_EVERY` at a time: a commit per verdict (an fsync on
# SQLite) cost a sixth of a warm run; progress still shows within `_FLUSH_SECONDS`.
_FLUSH_EVERY = 10
_FLUSH_SECONDS = 0.5
# How often the replica that started a run looks for batches left by a replica that died.
_CLAIM_POLL = 0.5
# Checks given up on whose threads still run, per worker, before the rest go unchecked.
_STUCK_PER_WORKER = 2


def _timed_out(summary: BatchLock, budget: float) -> DriftReport:
    message = f"not checked within {budget:g} s (the index was too slow); the next run checks it again"
    return _unresolvable(summary, message, ResolutionTimeout.code)


def _unchecked(summary: BatchLock, stuck: int) -> DriftReport:
    message = f"not checked: {stuck} checks of this run are stuck on the index; the next run checks it again"
    return _unresolvable(summary, message, IndexUnavailable.code)


def _unresolvable(summary: BatchLock, message: str, code: str) -> DriftReport:
    return DriftReport(
        input_digest=summary.input_digest,
        lock_digest=summary.lock_digest,
        status="unresolvable",
        findings=(Finding(kind="unresolvable", message=message, code=code),),
        fresh_lock_digest=None,
    )


class _Checked:
    """One lock's verdict, and the fresh lock (rendered) when it differs from the stored one."""

    def __init__(self, report: DriftReport, fresh: Lock | None) -> None:
        self.report = report
        self.fresh = fresh
        self.files: builtins.list[LockFileRecord] = [] if fresh is None else render_files(fresh)


class _Verdicts:
    """Verdicts of one replica's batch: written at once when they come slowly, else up to
    `_FLUSH_EVERY` to a transaction (at most `_FLUSH_SECONDS` after the last write)."""

    def __init__(self, checker: BatchChecker, run_id: int) -> None:
        self._checker = checker
        self._run_id = run_id
        self._pending: builtins.list[tuple[BatchLock, _Checked | DriftReport]] = []
        self._written_at = float("-inf")

    def add(self, lock: BatchLock, outcome: _Checked | DriftReport) -> None:
        self._pending.append((lock, outcome))
        if len(self._pending) >= _FLUSH_EVERY or time.monotonic() - self._written_at >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._checker.record(self._run_id, self._pending)
            self._pending = []
            self._written_at = time.monotonic()


class BatchChecker:
    """Checks claimed batches of drift runs over one service's database. Thread-safe."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def work(
        self,
        run_id: int,
        index: IndexClient,
        advisories: RunAdvisories,
        *,
        workers: int,
        claim_ttl: float,
        lease: HeldLease | None = None,
    ) -> None:
        """Claim and check batches of the run until none is left to claim. The replica that holds
        the run's `lease` stays until every batch is done, taking over expired claims."""
        holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        while True:
            if lease is not None and lease.lost:
                raise DriftRunInProgress("the drift lease was lost to another run; this run stops")
            now = datetime.now(UTC)
            with transaction(self._service.engine, write=True) as conn:
                until = now + timedelta(seconds=claim_ttl)
                batch = batches.claim_batch(conn, run_id, holder=holder, now=now, until=until)
                left = 0 if batch is not None or lease is None else batches.open_batches(conn, run_id)
            if batch is not None:
                self._check_batch(batch, holder, index, advisories, workers=workers, claim_ttl=claim_ttl)
            elif left == 0:
                return
            else:  # batches claimed by others: wait for them, or for their claims to expire
                time.sleep(min(_CLAIM_POLL, claim_ttl / 4))

    def _check_batch(
        self,
        batch: ClaimedBatch,
        holder: str,
        index: IndexClient,
        advisories: RunAdvisories,
        *,
        workers: int,
        claim_ttl: float,
    ) -> None:
        def renew() -> bool:
            until = datetime.now(UTC) + timedelta(seconds=claim_ttl)
            try:
                with transaction(self._service.engine, write=True) as conn:
                    kept = batches.renew_claim(conn, batch, holder=holder, until=until)
            except LockdError as exc:
                log.warning("could not renew a drift batch claim: %s", exc.message)
                return True
            if not kept:
                log.warning("drift run %s: batch %d was taken over", batch.run_id, batch.n)
            return kept

        with transaction(self._service.engine, write=False) as conn:
            rows = batches.batch_rows(conn, batch.run_id, batch.locks)
        pending = [lock for lock in batch.locks if lock.input_digest not in rows.done]
        verdicts = _Verdicts(self, batch.run_id)
        budget = self._lock_budget()

        def overdue(lock: BatchLock) -> None:
            log.warning(
                "drift run %s: %s not checked within %g s", batch.run_id, lock.input_digest[:12], budget
            )
            verdicts.add(lock, _timed_out(lock, budget))

        with Periodic(f"lockd-drift-claim-{batch.run_id}-{batch.n}", claim_ttl / 4, renew):
            run_within_deadlines(
                pending,
                lambda lock: self._check_one(lock, rows, index, advisories),
                workers=max(1, workers),
                budget=budget,
                max_stuck=max(1, workers) * _STUCK_PER_WORKER,
                on_done=verdicts.add,
                on_overdue=overdue,
                on_skipped=lambda lock, stuck: verdicts.add(lock, _unchecked(lock, stuck)),
                name=f"lockd-drift-{batch.run_id}-{batch.n}",
            )
            verdicts.flush()
        with transaction(self._service.engine, write=True) as conn:
            batches.finish_batch(conn, batch, now=datetime.now(UTC))
        log.info("drift run %s: batch %d checked (%d locks)", batch.run_id, batch.n, len(pending))

    def _check_one(
        self, summary: BatchLock, rows: BatchRows, index: IndexClient, advisories: RunAdvisories
    ) -> _Checked:
        """Files, a fresh resolution and advisories for one lock. Never raises a LockdError: failures become findings."""
        canonical = rows.locks.get(summary.lock_digest)
        stored = rows.inputs.get(summary.input_digest)
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
            fresh, _stats = self._service.resolve_in_budget(LockRequest.from_json(stored), index)
        except LockdError as exc:
            fresh = exc
        answer = advisories.check(lock)
        report = drift_for(
            lock,
            fresh,
            file_findings,
            vulnerabilities=answer.vulnerabilities,
            advisories=answer.status,
            order=self._service.settings.severity_order,
        )
        changed = isinstance(fresh, Lock) and report.fresh_lock_digest != report.lock_digest
        return _Checked(report, fresh if changed and isinstance(fresh, Lock) else None)

    def _lock_budget(self) -> float:
        settings = self._service.settings
        return settings.drift_lock_timeout or settings.resolve_timeout + settings.lease_ttl

    def record(self, run_id: int, outcomes: builtins.list[tuple[BatchLock, _Checked | DriftReport]]) -> None:
        """Store verdicts in one transaction; a lock that has one already (checked twice after a
        claim was taken over) keeps the first, and its proposal is not made twice."""
        with transaction(self._service.engine, write=True) as conn:
            now = datetime.now(UTC)
            for summary, outcome in outcomes:
                report = outcome.report if isinstance(outcome, _Checked) else outcome
                written = drift_store.put_report(conn, run_id, summary.revision, report, now=now)
                if written and isinstance(outcome, _Checked) and outcome.fresh is not None:
                    self._propose(conn, summary, outcome, now)
        for summary, outcome in outcomes:
            report = outcome.report if isinstance(outcome, _Checked) else outcome
            log.debug("drift run %s: %s is %s", run_id, summary.input_digest[:12], report.status)

    def _propose(self, conn: Connection, summary: BatchLock, checked: _Checked, now: datetime) -> None:
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
