"""What is inside a lock, through a live `lockd serve` and real drift runs: the advisories of a new
lock (headers, `/advisories`, the refusal policy with nothing stored), an OSV API that goes down
(unavailable, never "none"), `vulnerable` drift findings, their severity order and webhook, the
CycloneDX SBOM served like every format, and `why` over HTTP and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from fixtures.served_index import ControlledIndex, ServedIndex
from lockd.config import Settings
from lockd.drift_runs import DriftRuns
from lockd.drift_views import drift_findings, drift_results
from lockd.lock import Lock
from lockd.render.cyclonedx import render_cyclonedx, serial_number
from lockd.service import Service
from lockd.store import open_engine
from lockd.store.schema import lock_files
from tests.osv_reference import OsvState, by_name, osv_api
from tests.support import (
    FX_ADVISORY,
    ROOT,
    LockdServer,
    QuietHandler,
    StartLockd,
    advisory_database,
    assert_problem,
    files_of,
    loopback_http,
    publish_advisory,
    row_counts,
)

LINUX = {"platform": "linux_x86_64", "python": "3.11"}
_LOCK_TABLES = ("inputs", "locks", "lock_packages", "lock_files", "revisions")


@pytest.fixture
def advisories(tmp_path: Path) -> Path:
    """An advisory directory that knows the fixture advisory against lockd-fx-pyreq < 2.0."""
    directory = advisory_database(tmp_path / "advisories")
    publish_advisory(directory)
    return directory


@pytest.fixture
def osv() -> Iterator[tuple[OsvState, str]]:
    """A loopback OSV API serving the fixture advisory; set `state.fault` to make it misbehave."""
    records = {FX_ADVISORY["id"]: FX_ADVISORY}
    state = OsvState(records=records, indexed=by_name(records))
    with osv_api(state) as url:
        yield state, url


def open_service(database_url: str, index: ServedIndex, **overrides: Any) -> Service:
    settings = Settings(
        database_url=database_url, index_url=index.pypi_url, pytorch_index_url=index.pytorch_base, **overrides
    )
    return Service.open(settings)


def post_lock(server: LockdServer, requirements: str, **params: str) -> httpx.Response:
    with server.client("lock") as client:
        return client.post("/lock", params={**LINUX, **params}, content=requirements.encode())


# -- lock time ---------------------------------------------------------------------------------


def test_a_new_lock_carries_its_advisories_and_a_refused_one_stores_nothing(
    database_url: str, start_lockd: StartLockd, advisories: Path
) -> None:
    strict = start_lockd(
        database_url, LOCKD_ADVISORIES_DIR=str(advisories), LOCKD_REFUSE_ADVISORIES_AT="high"
    )
    before = row_counts(database_url)
    refused = post_lock(strict, "lockd-fx-pyreq\n")
    problem = assert_problem(refused, 409, "advisories-refused")
    (advisory,) = problem["context"]["advisories"]
    assert advisory["advisory_id"] == "LOCKD-FX-2026-1" and advisory["fixed_versions"] == ["2.0"]
    assert advisory["severity"]["level"] == "critical" and "LOCKD-FX-2026-1" in problem["detail"]
    after = row_counts(database_url)
    assert {t: after[t] for t in _LOCK_TABLES} == {t: before[t] for t in _LOCK_TABLES}, "nothing stored"
    clean = post_lock(strict, "lockd-fx-plain\n")
    assert clean.status_code == 201 and clean.headers["lockd-advisories"] == "0"
    assert "lockd-advisory-ids" not in clean.headers

    server = start_lockd(database_url, LOCKD_ADVISORIES_DIR=str(advisories))
    created = post_lock(server, "lockd-fx-pyreq\n")
    assert created.status_code == 201, created.text
    assert created.headers["lockd-advisories"] == "1"
    assert created.headers["lockd-advisory-ids"] == "LOCKD-FX-2026-1"
    again = post_lock(server, "lockd-fx-pyreq\n", format="json")
    assert again.status_code == 200 and again.headers["lockd-advisories"] == "1"
    assert "LOCKD-FX-2026-1" not in again.text, "lock.json is the lock alone: its sha256 is the lock digest"
    with server.client("lock") as client:
        as_json = client.post("/v1/locks", json={"requirements": "lockd-fx-pyreq", "target": LINUX})
        digest = created.headers["input-digest"]
        listed = client.get(f"/v1/locks/{digest}/advisories")
    assert as_json.status_code == 200 and as_json.headers["lockd-advisory-ids"] == "LOCKD-FX-2026-1"
    body = listed.json()
    assert listed.status_code == 200 and (body["status"], body["count"]) == ("checked", 1)
    assert body["lock_digest"] == created.headers["lock-digest"] and body["revision"] == 1
    (found,) = body["advisories"]
    assert (found["package"], found["version"], found["aliases"]) == (
        "lockd-fx-pyreq",
        "1.0",
        ["CVE-2099-0001"],
    )
    assert (
        found["url"] == "https://osv.dev/vulnerability/LOCKD-FX-2026-1" and found["fix_within_requirements"]
    )
    assert body["sources"] == [f"advisory directory {advisories}"] and body["refuse_at"] is None


@pytest.mark.parametrize("backend", ["sqlite"])  # HTTP plumbing over the same store: one backend is enough
def test_an_osv_api_that_fails_makes_the_check_unavailable_not_empty(
    database_url: str, start_lockd: StartLockd, osv: tuple[OsvState, str]
) -> None:
    state, url = osv
    server = start_lockd(database_url, LOCKD_OSV_URL=url, LOCKD_OSV_TIMEOUT="2")
    created = post_lock(server, "lockd-fx-pyreq\n")
    assert created.status_code == 201 and created.headers["lockd-advisories"] == "1"
    assert "POST /v1/querybatch" in state.requests and "GET /v1/vulns/LOCKD-FX-2026-1" in state.requests
    state.fault = "error"
    other = post_lock(server, "lockd-fx-plain\n")  # a pin the API's answers kept so far do not cover
    assert other.status_code == 201 and other.headers["lockd-advisories"] == "unavailable"
    with server.client("read") as client:
        body = client.get(f"/v1/locks/{other.headers['input-digest']}/advisories").json()
    assert body["status"] == "unavailable" and body["advisories"] == [] and body["count"] == 0
    assert "HTTP 500" in body["error"] and body["sources"] == [f"OSV API {url}"]


# -- drift ---------------------------------------------------------------------------------------


def test_drift_records_an_advisory_outage_then_finds_the_advisory(
    database_url: str, fixture_index: ServedIndex, osv: tuple[OsvState, str]
) -> None:
    state, url = osv
    service = open_service(database_url, fixture_index, osv_url=url, osv_timeout=2.0)
    try:
        state.fault = "error"  # from the start: no answer kept from lock time stands in for the run's
        digest = service.lock(service.build_request(requirements="lockd-fx-pyreq", target=LINUX)).input_digest
        down = DriftRuns(service).run()
        assert down is not None and down.status == "complete"
        assert down.advisories == "unavailable" and "HTTP 500" in (down.advisories_error or "")
        assert down.to_json()["advisories"] == {"status": "unavailable", "error": down.advisories_error}
        (result,) = drift_results(service, down.id)
        assert (result.status, result.advisories) == ("current", "unavailable")
        state.fault = None
        up = DriftRuns(service).run()
        assert up is not None and up.advisories == "checked" and up.counts["vulnerable"] == 1
        ((found_digest, finding),) = drift_findings(service, up.id)
    finally:
        service.close()
    assert found_digest == digest and finding.kind == "vulnerable" and finding.advisory is not None
    assert finding.advisory.advisory_id == "LOCKD-FX-2026-1" and "fixed in 2.0" in finding.message


def test_the_operator_places_vulnerable_in_the_severity_order(
    database_url: str, mutable_index: ControlledIndex, advisories: Path
) -> None:
    """A pin that is yanked, vulnerable and no longer resolvable: its status follows the order."""
    service = open_service(database_url, mutable_index, advisories_dir=advisories)
    reordered = open_service(
        database_url, mutable_index, advisories_dir=advisories, vulnerable_after="yanked"
    )
    try:
        service.lock(service.build_request(requirements="lockd-fx-pyreq", target=LINUX))
        for filename in files_of(mutable_index, "lockd-fx-pyreq", "1.0"):
            mutable_index.yank(filename)
        default = DriftRuns(service).run()
        moved = DriftRuns(reordered).run()
        assert default is not None and moved is not None
        kinds = {f.kind for _, f in drift_findings(service, default.id)}
        assert {"yanked", "vulnerable", "unresolvable"} <= kinds
        assert [r.status for r in drift_results(service, default.id)] == ["vulnerable"]
        assert [r.status for r in drift_results(reordered, moved.id)] == ["unresolvable"]
        assert moved.counts["unresolvable"] == 1 and moved.counts["vulnerable"] == 0
    finally:
        reordered.close()
        service.close()


def test_the_webhook_names_each_vulnerable_pin(
    database_url: str, fixture_index: ServedIndex, advisories: Path
) -> None:
    received: list[dict[str, Any]] = []

    class Receiver(QuietHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    with loopback_http(Receiver) as host:
        service = open_service(
            database_url, fixture_index, advisories_dir=advisories, webhook_url=f"http://{host}/hook"
        )
        try:
            digest = service.lock(
                service.build_request(requirements="lockd-fx-pyreq", target=LINUX)
            ).input_digest
            DriftRuns(service).run()
        finally:
            service.close()
    (body,) = received
    assert body["alert_kinds"] == ["vulnerable"] and body["counts"]["vulnerable"] == 1
    assert body["advisories"] == {"status": "checked", "error": None}
    (pin,) = body["vulnerable"]
    assert (pin["input_digest"], pin["package"], pin["version"]) == (digest, "lockd-fx-pyreq", "1.0")
    assert pin["advisory_id"] == "LOCKD-FX-2026-1" and pin["url"].startswith("https://osv.dev/")


def test_the_dashboard_names_the_open_proposal_that_fixes_an_advisory(
    database_url: str, start_lockd: StartLockd, mutable_index: ControlledIndex, advisories: Path
) -> None:
    """lockd-fx-pre 1.0 is pinned, an advisory says 1.2 fixes it, and 1.2 is published: the drift
    run proposes 1.2, and the lock page says that proposal fixes the advisory."""
    record = {
        **FX_ADVISORY,
        "id": "LOCKD-FX-2026-2",
        "aliases": [],
        "summary": "lockd-fx-pre before 1.2 leaks memory",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "lockd-fx-pre"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}],
            }
        ],
    }
    publish_advisory(advisories, record)
    server = start_lockd(database_url, index=mutable_index, LOCKD_ADVISORIES_DIR=str(advisories))
    created = post_lock(server, "lockd-fx-pre\n")
    assert created.headers["lockd-advisory-ids"] == "LOCKD-FX-2026-2"
    digest = created.headers["input-digest"]
    mutable_index.publish("lockd-fx-pre", "1.2")
    with server.client("admin") as admin:
        assert admin.post("/v1/drift/runs", params={"wait": "true"}).status_code == 200
        proposals = admin.get(f"/v1/locks/{digest}/proposals").json()
    (proposal,) = [p for p in proposals["items"] if p["status"] == "open"]
    page = httpx.get(server.url + f"/dashboard/locks/{digest}").text
    assert f'href="/dashboard/proposals/{proposal["id"]}">proposal #{proposal["id"]}</a> fixes it' in page
    assert "lockd-fx-pre 1.0 → 1.2" in page


# -- SBOM and why ----------------------------------------------------------------------------------


def test_the_sbom_is_served_like_every_format(database_url: str, start_lockd: StartLockd) -> None:
    server = start_lockd(database_url)
    created = post_lock(server, "lockd-fx-extras[all]\n", format="cyclonedx.json")
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == "application/vnd.cyclonedx+json; version=1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(created.text) is None
    sbom = created.json()
    assert sbom["serialNumber"].startswith("urn:uuid:")
    purls = {c["purl"].split("?")[0] for c in sbom["components"]}  # `?repository_url=`: not PyPI
    assert purls == {
        "pkg:pypi/lockd-fx-plain@1.1",
        "pkg:pypi/lockd-fx-extras@1.0",
        "pkg:pypi/lockd-fx-speedups@0.3",
    }
    digest, lock_digest = created.headers["input-digest"], created.headers["lock-digest"]
    with server.client("read") as client:
        current = client.get(f"/v1/locks/{digest}/cyclonedx.json")
        blob = client.get(f"/v1/blobs/{lock_digest}/cyclonedx.json")
        negotiated = client.post(
            "/lock",
            params=LINUX,
            content=b"lockd-fx-extras[all]\n",
            headers={
                "Accept": "application/vnd.cyclonedx+json",
                "Authorization": f"Bearer {server.tokens['lock']}",
            },
        )
        lock = Lock.from_json(client.get(f"/v1/blobs/{lock_digest}/lock.json").content)
    assert current.content == blob.content == negotiated.content == created.content
    assert current.headers["etag"] == created.headers["etag"] and sbom["serialNumber"] == serial_number(lock)

    # A new lock's SBOM is not rendered while it locks: it is rendered when first asked for, in
    # any process, and stored then; a lock stored before the format existed is served the same way.
    older = post_lock(server, "lockd-fx-plain\n")
    older_digest = older.headers["lock-digest"]
    sbom_row = sa.select(lock_files.c.content).where(
        sa.and_(lock_files.c.lock_digest == older_digest, lock_files.c.format == "cyclonedx.json")
    )
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sbom_row).first() is None
    finally:
        engine.dispose()
    server.restart()  # no process holds anything of it in memory
    with server.client("read") as client:
        rendered = client.get(f"/v1/locks/{older.headers['input-digest']}/cyclonedx.json")
        older_lock = Lock.from_json(client.get(f"/v1/blobs/{older_digest}/lock.json").content)
    assert rendered.status_code == 200 and rendered.content == render_cyclonedx(older_lock)
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            stored = conn.execute(sbom_row).first()
    finally:
        engine.dispose()
    assert stored is not None and bytes(stored.content) == rendered.content


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockd", "why", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("backend", ["sqlite"])  # reads of a stored lock: one backend is enough
def test_why_over_http_and_from_the_cli(database_url: str, start_lockd: StartLockd, tmp_path: Path) -> None:
    server = start_lockd(database_url, LOCKD_ANONYMOUS_READ="false")
    requirements = "lockd-fx-pyreq\n\nlockd-fx-extras[all]\n"
    created = post_lock(server, requirements)
    digest = created.headers["input-digest"]
    with server.client("read") as client:
        answer = client.get(f"/v1/locks/{digest}/why/Lockd_FX_Plain")
        text = client.get(f"/v1/locks/{digest}/why/lockd-fx-plain", headers={"Accept": "text/plain"})
        missing = client.get(f"/v1/locks/{digest}/why/requests")
        lock_json = client.get(f"/v1/locks/{digest}/lock.json").content
    body = answer.json()
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert (body["package"], body["version"], body["lines"]) == ("lockd-fx-plain", "1.1", "canonical input")
    ((first, last),) = [[step["package"] for step in (p["steps"][0], p["steps"][-1])] for p in body["paths"]]
    assert (first, last) == ("lockd-fx-extras", "lockd-fx-plain")
    assert body["paths"][0]["steps"][0]["line"] == 1, "position 1 of the sorted canonical input"
    expected = (
        "lockd-fx-extras[all] (canonical input requirement 1) → lockd-fx-extras 1.0 → lockd-fx-plain 1.1"
    )
    assert text.headers["content-type"].startswith("text/plain") and expected in text.text
    assert_problem(missing, 404, "package-not-in-lock")

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}
    remote = _cli(
        "lockd-fx-plain",
        "--server",
        server.url,
        "--digest",
        digest,
        env={**env, "LOCKD_TOKEN": server.tokens["read"]},
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == text.text
    refused = _cli("lockd-fx-plain", "--server", server.url, "--digest", digest, env=env)
    assert refused.returncode == 1 and "401" in refused.stderr

    (tmp_path / "lock.json").write_bytes(lock_json)
    (tmp_path / "requirements.in").write_text(requirements)
    local = _cli(
        "lockd-fx-plain",
        "--lock",
        str(tmp_path / "lock.json"),
        "-r",
        str(tmp_path / "requirements.in"),
        env=env,
    )
    assert local.returncode == 0, local.stderr
    assert (
        "lockd-fx-extras[all] (requirements.in line 3) → lockd-fx-extras 1.0 → lockd-fx-plain 1.1"
        in local.stdout
    )
    as_json = _cli("lockd-fx-speedups", "--lock", str(tmp_path / "lock.json"), "--json", env=env)
    assert json.loads(as_json.stdout)["paths"][0]["steps"][0]["line"] is None
    assert _cli("lockd-fx-plain", env=env).returncode == 2
