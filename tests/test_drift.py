"""Drift: every finding kind from a real index mutation, stored runs, crashes, the lease, the
webhook, and the `drift check` gate — on SQLite and PostgreSQL, against the fixture index."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
import sqlalchemy as sa
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.served_index import ControlledIndex, ServedIndex
from lockd.config import Settings
from lockd.drift import (
    ALERT_KINDS,
    CHANGE_KINDS,
    FILE_KINDS,
    FINDING_KIND_TABLE,
    FINDING_KINDS,
    DriftRunInProgress,
    Finding,
    FindingKind,
    compare_locks,
    drift_for,
    parse_kinds,
    worst,
)
from lockd.drift_runs import DriftRuns
from lockd.drift_views import drift_findings, drift_lock, drift_results
from lockd.errors import InvalidRequest, NoMatchingDistribution
from lockd.inputs import LockOptions
from lockd.lock import Lock, LockedFile, LockedPackage
from lockd.routing import plan_for
from lockd.service import Service
from lockd.store import drift as drift_store
from lockd.store import leases as store_leases
from lockd.store import open_engine, transaction
from lockd.target import Target
from tests.support import (
    SCENARIO,
    QuietHandler,
    advisory_database,
    files_of,
    lock_inputs,
    loopback_http,
    mutate,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent


def open_service(database_url: str, index: ServedIndex, **overrides: Any) -> Service:
    settings = Settings(
        database_url=database_url, index_url=index.pypi_url, pytorch_index_url=index.pytorch_base, **overrides
    )
    return Service.open(settings)


@pytest.fixture
def service(database_url: str, mutable_index: ControlledIndex, tmp_path: Path) -> Iterator[Service]:
    opened = open_service(
        database_url, mutable_index, advisories_dir=advisory_database(tmp_path / "advisories")
    )
    try:
        yield opened
    finally:
        opened.close()


def by_lock(service: Service, run_id: int) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for digest, finding in drift_findings(service, run_id):
        grouped.setdefault(digest, []).append(finding)
    return grouped


# -- pure comparison -------------------------------------------------------------------------


def _package(name: str, version: str) -> LockedPackage:
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    file = LockedFile(wheel, f"https://example.invalid/{wheel}", "0" * 64, 1, "wheel")
    return LockedPackage(
        canonicalize_name(name),
        Version(version),
        "https://pypi.org/simple/",
        (file,),
        (),
        ("-r requirements.in",),
    )


def _lock(*pins: tuple[str, str]) -> Lock:
    target = Target.of("linux_x86_64", "3.11")
    return Lock.build(
        input_digest="a" * 64,
        target=target,
        plan=plan_for(target),
        requirements=["x"],
        constraints=[],
        options=LockOptions(),
        packages=[_package(n, v) for n, v in pins],
    )


def test_compare_locks_lists_each_upgrade_downgrade_addition_and_removal() -> None:
    old = _lock(("numpy", "2.0.2"), ("pillow", "11.0.0"), ("idna", "3.7"), ("same", "1.0"))
    new = _lock(("numpy", "2.1.3"), ("pillow", "10.4.0"), ("certifi", "2024.8.30"), ("same", "1.0"))
    changes = {(f.package, f.change, str(f.old_version), str(f.new_version)) for f in compare_locks(old, new)}
    assert changes == {
        ("numpy", "upgrade", "2.0.2", "2.1.3"),
        ("pillow", "downgrade", "11.0.0", "10.4.0"),
        ("certifi", "added", "None", "2024.8.30"),
        ("idna", "removed", "3.7", "None"),
    }
    assert compare_locks(old, old) == []


def test_drift_for_takes_the_most_severe_kind_and_says_current_otherwise() -> None:
    lock = _lock(("numpy", "2.0.2"))
    report = drift_for(lock, lock, [])
    assert report.status == "current" and [f.kind for f in report.findings] == ["current"]
    assert report.fresh_lock_digest == lock.digest
    failed = drift_for(lock, NoMatchingDistribution("numpy has no wheel"), [])
    assert failed.status == "unresolvable" and failed.findings[0].code == "no-matching-distribution"
    assert failed.fresh_lock_digest is None
    yanked = Finding(kind="yanked", message="y")
    tampered = Finding(kind="tampered", message="t")
    assert drift_for(lock, _lock(("numpy", "2.1.3")), [yanked]).status == "yanked"
    assert drift_for(lock, lock, [yanked, tampered]).status == "tampered"
    assert worst(["outdated", "missing", "unresolvable"]) == "missing"


def test_parse_kinds() -> None:
    assert parse_kinds("tampered, missing,") == {"tampered", "missing"}
    assert parse_kinds("") == frozenset()
    with pytest.raises(InvalidRequest, match="bogus"):
        parse_kinds("tampered,bogus")


def test_the_kind_table_matches_the_type_and_says_which_kinds_alert() -> None:
    assert get_args(FindingKind) == FINDING_KINDS
    assert {"tampered", "missing", "vulnerable", "unresolvable"} == ALERT_KINDS
    assert {"tampered", "missing", "yanked"} == FILE_KINDS
    assert len({kind.colour for kind in FINDING_KIND_TABLE}) == len(FINDING_KINDS)


def test_the_migrated_database_checks_the_same_kinds(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        checks = {
            (table, check["name"]): check["sqltext"]
            for table in ("drift_results", "drift_findings")
            for check in inspector.get_check_constraints(table)
        }
    finally:
        engine.dispose()
    expected = {
        ("drift_results", "ck_drift_results_status_known"): FINDING_KINDS,
        ("drift_findings", "ck_drift_findings_kind_known"): FINDING_KINDS,
        ("drift_findings", "ck_drift_findings_change_known"): CHANGE_KINDS,
    }
    for key, kinds in expected.items():
        assert tuple(re.findall(r"'([a-z]+)'", checks[key])) == kinds, key


# -- runs against the fixture index ------------------------------------------------------------


def test_every_finding_kind_from_index_mutations_is_stored(
    service: Service, mutable_index: ControlledIndex
) -> None:
    digests = lock_inputs(service)
    unchanged = DriftRuns(service).run()
    assert unchanged is not None and unchanged.status == "complete"
    assert unchanged.counts["current"] == len(SCENARIO) and unchanged.locks_total == len(SCENARIO)

    assert unchanged.advisories == "checked"
    changed = mutate(mutable_index, advisories=service.settings.advisories_dir)
    record = DriftRuns(service).run()
    assert record is not None and record.status == "complete"
    assert record.counts == dict.fromkeys(SCENARIO, 1)
    assert record.locks_checked == record.locks_total == len(SCENARIO)
    assert record.duration_seconds is not None and record.finished_at is not None

    statuses = {r.input_digest: r.status for r in drift_results(service, record.id)}
    assert statuses == {digests[kind]: kind for kind in SCENARIO}
    findings = by_lock(service, record.id)

    (upgrade,) = findings[digests["outdated"]]
    assert (upgrade.kind, upgrade.package, upgrade.change) == ("outdated", "lockd-fx-pre", "upgrade")
    assert (str(upgrade.old_version), str(upgrade.new_version)) == ("1.0", "1.2")

    yanked = {f.kind: f for f in findings[digests["yanked"]]}
    assert yanked["yanked"].filename == "lockd_fx_plain-1.1-py3-none-any.whl"
    assert "broken build" in yanked["yanked"].message
    # the fresh resolution steps back to 1.0: the yank is also a downgrade
    assert (yanked["outdated"].change, str(yanked["outdated"].new_version)) == ("downgrade", "1.0")

    missing = [f for f in findings[digests["missing"]] if f.kind == "missing"]
    assert [f.filename for f in missing] == ["lockd_fx_speedups-0.3-py3-none-any.whl"]

    (tampered,) = findings[digests["tampered"]]
    assert tampered.kind == "tampered" and tampered.filename == changed["tampered_file"]
    assert tampered.new_sha256 == changed["tampered_sha"] and tampered.old_sha256 != tampered.new_sha256

    unresolvable = {f.kind: f for f in findings[digests["unresolvable"]]}
    assert unresolvable["unresolvable"].code == "no-matching-distribution"
    assert "lockd-fx-conflict-b" in unresolvable["unresolvable"].message
    assert [f.kind for f in findings[digests["current"]]] == ["current"]

    (vulnerable,) = findings[digests["vulnerable"]]
    assert (vulnerable.kind, vulnerable.package, str(vulnerable.old_version)) == (
        "vulnerable",
        "lockd-fx-pyreq",
        "1.0",
    )
    advisory = vulnerable.advisory
    assert advisory is not None and advisory.advisory_id == "LOCKD-FX-2026-1"
    assert advisory.aliases == ("CVE-2099-0001",) and advisory.fixed_versions == (Version("2.0"),)
    assert advisory.fix_within_requirements and advisory.severity is not None
    assert advisory.severity.level == "critical" and advisory.url.endswith("/LOCKD-FX-2026-1")
    assert record.advisories == "checked" and record.advisories_error is None

    # the API and dashboard judge by the latest complete run
    latest = DriftRuns(service).latest()
    assert latest is not None and latest.id == record.id
    view = drift_lock(service, digests["tampered"])
    assert view.result.status == "tampered" and [r.n for r in view.revisions] == [1]


def test_deleting_a_dependencys_only_matching_version_makes_the_input_unresolvable(
    service: Service, mutable_index: ControlledIndex
) -> None:
    (digest,) = lock_inputs(service, {"unresolvable": "lockd-fx-conflict-a"}).values()
    for filename in files_of(mutable_index, "lockd-fx-conflict-b", "1.0"):
        mutable_index.delete(filename)
    record = DriftRuns(service).run()
    assert record is not None
    kinds = {f.kind: f for f in by_lock(service, record.id)[digest]}
    assert set(kinds) == {"missing", "unresolvable"}
    assert kinds["missing"].package == "lockd-fx-conflict-b"
    assert kinds["unresolvable"].code in {"no-matching-distribution", "resolution-impossible"}
    # a vanished file breaks the next build now, so it outranks the failed refresh
    assert drift_results(service, record.id)[0].status == "missing"


def test_a_file_listed_without_a_hash_is_rehashed(database_url: str, mutable_index: ControlledIndex) -> None:
    """The PyTorch index lists one torchaudio wheel per variant with no #sha256=: replacing its
    bytes must still be caught, by streaming the file and hashing it."""
    service = open_service(database_url, mutable_index)
    try:
        request = service.build_request(
            requirements="torchaudio==2.5.1",
            target={"platform": "linux_x86_64", "python": "3.12", "cuda": "cpu"},
        )
        digest = service.lock(request).input_digest
        hashless = "torchaudio-2.5.1+cpu-cp312-cp312-linux_x86_64.whl"
        new_sha = mutable_index.replace_content(hashless, index="cpu")
        record = DriftRuns(service).run()
    finally:
        service.close()
    assert record is not None
    tampered = [f for f in by_lock(service, record.id)[digest] if f.kind == "tampered"]
    assert [(f.filename, f.new_sha256) for f in tampered] == [(hashless, new_sha)]


def test_an_index_outage_is_not_reported_as_drift(service: Service, mutable_index: ControlledIndex) -> None:
    (digest,) = lock_inputs(service, {"current": "lockd-fx-pre"}).values()
    mutable_index.set_fault("500")
    record = DriftRuns(service).run()
    mutable_index.set_fault(None)
    assert record is not None and record.status == "complete"
    kinds = {f.kind for f in by_lock(service, record.id)[digest]}
    assert "missing" not in kinds and "tampered" not in kinds
    codes = {f.code for f in by_lock(service, record.id)[digest]}
    assert codes == {"index-unavailable"}


# -- the lease, crashes, and the next run -------------------------------------------------------


def test_runs_never_overlap_and_a_held_lease_refuses_a_second_run(service: Service) -> None:
    lock_inputs(service, {"current": "lockd-fx-markers"})
    with transaction(service.engine, write=True) as conn:
        assert store_leases.acquire(conn, "drift", "drift", "another-replica", now=time.time(), ttl=60)
    with pytest.raises(DriftRunInProgress) as info:
        DriftRuns(service).run()
    assert info.value.status == 409
    with transaction(service.engine, write=True) as conn:
        store_leases.release(conn, "drift", "drift", "another-replica")
    record = DriftRuns(service).run()
    assert record is not None and record.status == "complete"


def test_a_scheduled_tick_already_covered_is_skipped(service: Service) -> None:
    lock_inputs(service, {"current": "lockd-fx-markers"})
    first = DriftRuns(service).run(trigger="schedule", scheduled_for=drift_store.stale_cutoff(_now(), 5))
    assert first is not None
    # a second replica waking for the same tick finds it done
    again = DriftRuns(service).run(trigger="schedule", scheduled_for=drift_store.stale_cutoff(_now(), 5))
    assert again is None
    assert DriftRuns(service).latest(complete_only=False).id == first.id  # type: ignore[union-attr]


def _now() -> datetime:
    return datetime.now(UTC)


def _drift_env(database_url: str, index: ServedIndex, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}
    env.update(
        LOCKD_DATABASE_URL=database_url,
        LOCKD_INDEX_URL=index.pypi_url,
        LOCKD_PYTORCH_INDEX_URL=index.pytorch_base,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def test_a_run_killed_mid_way_is_never_complete_and_the_next_run_succeeds(
    database_url: str, mutable_index: ControlledIndex
) -> None:
    service = open_service(database_url, mutable_index, drift_lease_ttl=1.0)
    try:
        digests = lock_inputs(service)
        mutable_index.set_latency(400)  # each index request now takes 0.4 s: the run is slow
        env = _drift_env(database_url, mutable_index, LOCKD_DRIFT_LEASE_TTL="1", LOCKD_DRIFT_WORKERS="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "lockd", "drift", "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            running = None
            while time.monotonic() < deadline and running is None:
                found = DriftRuns(service).latest(complete_only=False)
                if found is not None and found.status == "running" and found.locks_checked >= 1:
                    running = found
                time.sleep(0.05)
            assert running is not None, "the drift subprocess never got going"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == -signal.SIGKILL

        # Killed: nothing complete to show, and once its heartbeat is stale it reads as abandoned.
        assert DriftRuns(service).latest() is None
        wait_until(
            lambda: DriftRuns(service).get(running.id).status == "abandoned",
            10,
            "the killed run never read abandoned",
        )

        mutable_index.set_latency(0)
        record = DriftRuns(service).run()
        assert record is not None and record.status == "complete" and record.id > running.id
        assert record.counts["current"] == len(digests)
        with transaction(service.engine, write=False) as conn:
            stored = drift_store.get_run(conn, running.id)
            assert stored is not None and stored.status == "abandoned" and stored.finished_at is None
            assert "interrupted" in (stored.error or "")
            # its partial results are gone: nothing can mistake them for a verdict
            assert drift_store.list_results(conn, running.id) == []
        latest = DriftRuns(service).latest()
        assert latest is not None and latest.id == record.id
    finally:
        service.close()


# -- the webhook and the CLI gate --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Webhook:
    url: str
    received: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    received: list[dict[str, Any]] = []

    class Receiver(QuietHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    with loopback_http(Receiver) as host:
        yield _Webhook(f"http://{host}/hook", received)


def test_webhook_gets_a_summary_only_when_something_needs_a_human(
    database_url: str, mutable_index: ControlledIndex, webhook: _Webhook
) -> None:
    url = webhook.url
    service = open_service(database_url, mutable_index, webhook_url=url)
    try:
        lock_inputs(service, {"outdated": "lockd-fx-pre", "missing": "lockd-fx-speedups"})
        mutable_index.publish("lockd-fx-pre", "1.2")
        DriftRuns(service).run()
        assert webhook.received == []  # outdated alone pages nobody
        for filename in files_of(mutable_index, "lockd-fx-speedups", "0.3"):
            mutable_index.delete(filename)
        record = DriftRuns(service).run()
    finally:
        service.close()
    assert record is not None
    (body,) = webhook.received
    assert body["event"] == "lockd.drift" and body["run_id"] == record.id
    assert body["alert_kinds"] == ["missing"]
    assert body["counts"]["missing"] == 1 and body["counts"]["outdated"] == 1


def test_an_unreachable_webhook_does_not_fail_the_run(
    database_url: str, mutable_index: ControlledIndex
) -> None:
    service = open_service(database_url, mutable_index, webhook_url="http://127.0.0.1:9/unreachable")
    try:
        lock_inputs(service, {"missing": "lockd-fx-speedups"})
        for filename in files_of(mutable_index, "lockd-fx-speedups", "0.3"):
            mutable_index.delete(filename)
        record = DriftRuns(service).run()
    finally:
        service.close()
    assert record is not None and record.status == "complete" and record.counts["missing"] == 1


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockd", "drift", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# The gate is CLI plumbing over the same store code as above: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_drift_check_gates_ci_on_the_latest_run(database_url: str, mutable_index: ControlledIndex) -> None:
    service = open_service(database_url, mutable_index)
    try:
        lock_inputs(service, {"outdated": "lockd-fx-pre", "tampered": "lockd-fx-conflict-c"})
    finally:
        service.close()
    env = _drift_env(database_url, mutable_index)
    never = _cli(env, "check", "--fail-on", "tampered,missing")
    assert never.returncode == 1 and "no drift run has completed yet" in never.stderr

    clean = _cli(env, "run")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["counts"]["current"] == 2
    assert _cli(env, "check", "--fail-on", "tampered,missing").returncode == 0

    mutable_index.publish("lockd-fx-pre", "1.2")
    (wheel,) = files_of(mutable_index, "lockd-fx-conflict-c", "1.0")
    mutable_index.replace_content(wheel)
    ran = _cli(env, "run", "--fail-on", "tampered")
    assert ran.returncode == 3 and "tampered" in ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["status"] == "complete" and summary["counts"]["tampered"] == 1
    assert "drift run" in ran.stderr  # progress is logged

    gate = _cli(env, "check", "--fail-on", "tampered,missing")
    assert gate.returncode == 3 and wheel in gate.stderr
    assert _cli(env, "check", "--fail-on", "missing").returncode == 0
    assert _cli(env, "check", "--fail-on", "outdated").returncode == 3
    bad = _cli(env, "check", "--fail-on", "tampered,nonsense")
    assert bad.returncode == 1 and "nonsense" in bad.stderr
