"""`kill -9` of the server in the middle of a resolution and of a drift run, then a restart.

No partial lock may be left (every stored input has its lock, files and revision, or nothing
is there), a drift run that was killed is never shown complete, and the next request succeeds.
A killed resolution's lease outlives its holder until it expires (LOCKD_RESOLVE_TIMEOUT + 30 s),
so the test keeps the budget small and shows the same input locking once it has expired.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from fixtures.served_index import ControlledIndex
from lockd.render import FORMATS
from tests.support import LockdServer, StartLockd, row_counts, wait_until

pytestmark = pytest.mark.slow

LINUX = {"platform": "linux_x86_64", "python": "3.11"}


def _post(server: LockdServer, text: str, timeout: float = 60) -> httpx.Response:
    with server.client("lock", timeout=timeout) as client:
        return client.post("/lock", params=LINUX, content=text, headers={"content-type": "text/plain"})


def _kill(server: LockdServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    server.process = None


def _consistent(database_url: str) -> dict[str, int]:
    counts = row_counts(database_url)
    # One revision per input here, and every lock has its eagerly rendered files (the others are
    # rendered and stored when first read).
    assert counts["inputs"] == counts["revisions"] == counts["locks"], counts
    eager = sum(1 for spec in FORMATS.values() if spec.eager)
    assert counts["lock_files"] == eager * counts["locks"], counts
    return counts


def test_kill_during_a_resolution(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    # The default two-minute budget: a killed holder must block its input for one lease TTL
    # (15 s, renewed while it lives), not for the whole budget.
    server = start_lockd(database_url, index=mutable_index)
    assert _post(server, unique_requirements).status_code == 201
    mutable_index.set_fault("hang", seconds=30, path_prefix="/simple/lockd-fx-extras")
    outcome: list[BaseException | httpx.Response] = []

    def doomed() -> None:
        try:
            outcome.append(_post(server, "lockd-fx-extras\n"))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=doomed)
    worker.start()
    # It holds the lease: resolving.
    wait_until(
        lambda: row_counts(server.database_url)["resolution_leases"], 10, "the resolution never started"
    )
    time.sleep(0.5)  # and is now waiting on the hanging index page
    _kill(server)
    worker.join(10)
    assert outcome and isinstance(outcome[0], httpx.TransportError), outcome
    assert _consistent(server.database_url)["inputs"] == 1  # nothing of the killed resolution

    mutable_index.set_fault(None)
    server.start()
    with server.client("read") as client:
        assert client.get("/readyz").status_code == 200
        assert len(client.get("/v1/locks").json()["items"]) == 1
    # The next request succeeds at once; the killed input locks as soon as its lease has expired.
    assert _post(server, "lockd-fx-plain\n").status_code == 201
    started = time.monotonic()
    retried = _post(server, "lockd-fx-extras\n")
    assert retried.status_code == 201, retried.text
    assert time.monotonic() - started < 25
    assert _consistent(server.database_url)["inputs"] == 3


def test_kill_during_a_drift_run(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    server = start_lockd(database_url, index=mutable_index, LOCKD_DRIFT_LEASE_TTL="3", LOCKD_PAGE_TTL="0")
    assert _post(server, unique_requirements).status_code == 201
    assert _post(server, "lockd-fx-extras\n").status_code == 201
    mutable_index.set_fault("hang", seconds=30, path_prefix="/simple/")
    with server.client("admin") as admin:
        started = admin.post("/v1/drift/runs")
        assert started.status_code == 202, started.text
        run_id = started.json()["run"]["id"]
        assert started.json()["run"]["status"] == "running"
    time.sleep(1.0)
    _kill(server)
    mutable_index.set_fault(None)
    server.start()
    with server.client("admin") as admin:
        # The killed run is never shown complete: running until its heartbeat is stale, then abandoned.
        seen = admin.get(f"/v1/drift/runs/{run_id}").json()["run"]
        assert seen["status"] in ("running", "abandoned"), seen
        assert seen["status"] != "complete"
        assert admin.get("/v1/drift").status_code == 404  # no complete run to report
        wait_until(
            lambda: admin.get(f"/v1/drift/runs/{run_id}").json()["run"]["status"] == "abandoned",
            15,
            "the killed run never read abandoned",
        )
        after = admin.post("/v1/drift/runs", params={"wait": "true"}, timeout=60)
        assert after.status_code == 200, after.text
        assert after.json()["run"]["status"] == "complete"
        assert after.json()["run"]["locks_checked"] == 2
        latest = admin.get("/v1/drift").json()["run"]
        assert latest["id"] == after.json()["run"]["id"] != run_id
        assert admin.get(f"/v1/drift/runs/{run_id}").json()["run"]["status"] == "abandoned"
    assert _post(server, "lockd-fx-plain\n").status_code == 201
    _consistent(server.database_url)
