"""Drift shared by replicas through the database: two replicas split one run and store exactly one
verdict per lock; a batch claimed by a replica that died is taken over once its claim expires.

Two `DriftRuns` over two services (two engines, two connection pools) on one database stand for
two replicas: what they share is only the database, as between two processes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from fixtures.served_index import ControlledIndex, ServedIndex
from lockd.config import Settings
from lockd.drift import DriftReport
from lockd.drift_runs import DriftRuns
from lockd.drift_views import DriftRunView
from lockd.service import Service
from lockd.store import drift as drift_store
from lockd.store import drift_batches, transaction

_TARGET = {"platform": "linux_x86_64", "python": "3.11"}
_LOCKS = 24
_BATCH = 3


def _open(database_url: str, index: ServedIndex) -> Service:
    return Service.open(
        Settings(database_url=database_url, index_url=index.pypi_url, pytorch_index_url=index.pytorch_base)
    )


@pytest.fixture
def replicas(database_url: str, mutable_index: ControlledIndex) -> Iterator[tuple[Service, Service]]:
    first, second = _open(database_url, mutable_index), _open(database_url, mutable_index)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _store_locks(service: Service, count: int) -> set[str]:
    digests = set()
    for n in range(count):
        # Distinct inputs (each `!=` excludes a version nobody published), one small resolution each.
        text = f"lockd-fx-markers\nlockd-fx-plain!=0.0.{n}\n"
        digests.add(service.lock(service.build_request(requirements=text, target=_TARGET)).input_digest)
    return digests


def _verdicts(service: Service, run_id: int) -> Counter[str]:
    with transaction(service.engine, write=False) as conn:
        rows = conn.execute(
            sa.text("SELECT input_digest FROM drift_results WHERE run_id = :run"), {"run": run_id}
        )
        return Counter(row.input_digest for row in rows)


def _holders(service: Service, run_id: int) -> dict[int, str]:
    with transaction(service.engine, write=False) as conn:
        rows = conn.execute(
            sa.text("SELECT n, claimed_by FROM drift_batches WHERE run_id = :run"), {"run": run_id}
        )
        return {row.n: row.claimed_by for row in rows}


def test_two_replicas_split_one_run_with_one_verdict_per_lock(
    replicas: tuple[Service, Service], mutable_index: ControlledIndex
) -> None:
    leader, helper = replicas
    digests = _store_locks(leader, _LOCKS)
    mutable_index.set_latency(5)  # every check waits on the index a little: both replicas get batches
    finished: list[DriftRunView | None] = []
    thread = threading.Thread(
        target=lambda: finished.append(DriftRuns(leader).run(workers=2, batch_size=_BATCH)), daemon=True
    )
    thread.start()
    helped: list[int] = []
    while thread.is_alive():
        run_id = DriftRuns(helper).help_running(workers=2)
        if run_id is not None:
            helped.append(run_id)
        thread.join(0.02)
    view = finished[0]
    assert view is not None and view.status == "complete"
    assert helped and set(helped) == {view.id}, "the second replica never claimed a batch"

    verdicts = _verdicts(leader, view.id)
    assert set(verdicts) == digests and set(verdicts.values()) == {1}
    assert (view.locks_total, view.locks_checked, sum(view.counts.values())) == (_LOCKS, _LOCKS, _LOCKS)
    holders = _holders(leader, view.id)
    assert len(holders) == _LOCKS // _BATCH
    assert len(set(holders.values())) >= 2, "one replica checked every batch"


def test_a_batch_claimed_by_a_replica_that_died_is_taken_over(replicas: tuple[Service, Service]) -> None:
    leader, dead = replicas
    digests = _store_locks(leader, 8)
    died_with: dict[str, str] = {}

    def claim_and_die(run_id: int) -> None:
        # What a replica leaves when it is killed mid-batch: a claim nobody renews, and the
        # verdict of the one lock it had stored.
        now = datetime.now(UTC)
        with transaction(dead.engine, write=True) as conn:
            batch = drift_batches.claim_batch(
                conn, run_id, holder="dead-replica", now=now, until=now + timedelta(seconds=1)
            )
            assert batch is not None
            first = batch.locks[0]
            report = DriftReport(
                input_digest=first.input_digest,
                lock_digest=first.lock_digest,
                status="current",
                findings=(),
                fresh_lock_digest=None,
            )
            assert drift_store.put_report(conn, run_id, first.revision, report, now=now)
        died_with["input"] = first.input_digest

    view = DriftRuns(leader).run(lease_ttl=1.0, batch_size=_BATCH, on_started=claim_and_die)
    assert view is not None and view.status == "complete"
    verdicts = _verdicts(leader, view.id)
    assert set(verdicts) == digests and set(verdicts.values()) == {1}
    assert view.locks_checked == 8
    holders = _holders(leader, view.id)
    assert "dead-replica" not in holders.values(), "the dead replica's batch was never taken over"
    with transaction(leader.engine, write=False) as conn:
        kept = conn.execute(
            sa.text("SELECT checked_at FROM drift_results WHERE run_id = :run AND input_digest = :d"),
            {"run": view.id, "d": died_with["input"]},
        ).scalar_one()
    assert kept is not None  # the dead replica's verdict stands: that lock was not checked twice
