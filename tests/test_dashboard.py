"""The drift API and dashboard on a live `lockd serve`: every finding kind as the page shows
it, filters, the per-lock diff, escaping, scopes, gauges, and the in-process scheduler."""

from __future__ import annotations

import itertools
import re
import time
from html.parser import HTMLParser
from typing import Any

import httpx

from fixtures.served_index import ControlledIndex
from lockd.drift_runs import DriftRuns
from lockd.render import FILE_NAMES
from lockd.service import Service
from tests.support import SCENARIO, XSS, LockdServer, StartLockd, lock_inputs, metric_value


class _Page(HTMLParser):
    """Just enough of the DOM: text by element id, rows of the locks table, every link."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, list[str]] = {}
        self.rows: list[dict[str, str]] = []
        self.links: list[str] = []
        self.scripts = 0
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "tr" and "data-input" in found:
            self.rows.append({"status": str(found.get("data-status")), "input": str(found["data-input"])})
        if found.get("id"):
            self._open.append(str(found["id"]))
            self.by_id.setdefault(str(found["id"]), [])
        else:
            self._open.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element:
                self.by_id[element].append(data)

    def text(self, element: str) -> str:
        return " ".join(" ".join(self.by_id.get(element, [])).split())


def test_post_runs_needs_admin_and_answers_with_the_stored_run(
    drifted: tuple[LockdServer, dict[str, str]],
) -> None:
    server, digests = drifted
    with server.client(None) as anonymous, server.client("lock") as locker:
        assert anonymous.post("/v1/drift/runs").status_code == 401
        refused = locker.post("/v1/drift/runs")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        latest = anonymous.get("/v1/drift")
    assert latest.status_code == 200
    body = latest.json()
    assert body["run"]["status"] == "complete" and body["run"]["counts"] == dict.fromkeys(SCENARIO, 1)
    statuses = {lock["input_digest"]: lock["status"] for lock in body["locks"]}
    assert statuses == {digests[kind]: kind for kind in SCENARIO}
    tampered = next(lock for lock in body["locks"] if lock["status"] == "tampered")
    assert tampered["findings"][0]["kind"] == "tampered" and tampered["findings"][0]["new_sha256"]
    assert tampered["links"]["revision"] == f"/v1/locks/{tampered['input_digest']}/revisions/1"
    with server.client("read") as reader:
        one = reader.get(f"/v1/drift/runs/{body['run']['id']}")
        missing = reader.get("/v1/drift/runs/999999")
    assert one.json() == body
    assert missing.status_code == 404 and missing.json()["code"] == "not-found"


def test_post_runs_answers_202_with_location_then_the_run_completes(
    drifted: tuple[LockdServer, dict[str, str]],
) -> None:
    server, _ = drifted
    with server.client("admin") as admin:
        started = admin.post("/v1/drift/runs")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert started.json()["run"]["status"] in {"running", "complete"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = admin.get(location).json()["run"]
            if run["status"] != "running":
                break
            time.sleep(0.1)
    assert run["status"] == "complete" and run["locks_checked"] == len(SCENARIO)


def test_dashboard_shows_counts_rows_history_and_the_last_run(
    drifted: tuple[LockdServer, dict[str, str]],
) -> None:
    server, digests = drifted
    page_response = httpx.get(server.url + "/dashboard")
    assert page_response.status_code == 200
    assert page_response.headers["content-type"].startswith("text/html")
    page = _Page(page_response.text)
    for kind in SCENARIO:
        assert page.text(f"count-{kind}") == f"1 {kind}"
    assert {(row["status"], row["input"]) for row in page.rows} == {(k, digests[k]) for k in SCENARIO}
    # most severe first
    assert [row["status"] for row in page.rows] == [
        "tampered",
        "missing",
        "vulnerable",
        "unresolvable",
        "yanked",
        "outdated",
        "current",
    ]
    assert "Last complete run" in page.text("last-run") and re.search(
        r"\d+\.\d s", page.text("last-run-duration")
    )
    assert page.scripts == 0  # readable without JavaScript: there is none
    svg = page_response.text[page_response.text.index("<svg") : page_response.text.index("</svg>")]
    assert svg.count("<rect") >= 1 + len(SCENARIO)  # the all-current run, then one slice per kind
    assert "1 tampered" in svg
    for kind in SCENARIO:
        assert f"/dashboard/locks/{digests[kind]}" in page.links


def test_dashboard_filters_by_status_and_target(drifted: tuple[LockdServer, dict[str, str]]) -> None:
    server, digests = drifted
    only = _Page(httpx.get(server.url + "/dashboard", params={"status": "tampered"}).text)
    assert [row["input"] for row in only.rows] == [digests["tampered"]]
    assert f"Showing 1 of {len(SCENARIO)}" in only.text("shown")
    same_target = _Page(
        httpx.get(server.url + "/dashboard", params={"platform": "linux_x86_64", "python": "3.11"}).text
    )
    assert len(same_target.rows) == len(SCENARIO)
    other = _Page(httpx.get(server.url + "/dashboard", params={"platform": "macos_arm64"}).text)
    assert (
        other.rows == []
        and "No lock matches" in httpx.get(server.url + "/dashboard?platform=macos_arm64").text
    )
    bad = httpx.get(server.url + "/dashboard", params={"status": "bogus"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid-request"


def test_lock_page_shows_the_diff_and_links_to_revisions(drifted: tuple[LockdServer, dict[str, str]]) -> None:
    server, digests = drifted
    yanked = httpx.get(server.url + f"/dashboard/locks/{digests['yanked']}")
    assert yanked.status_code == 200
    page = _Page(yanked.text)
    assert page.text("lock-status") == "yanked"
    assert "lockd-fx-plain 1.1 → 1.0 downgrade" in page.text("versions")
    assert "lockd_fx_plain-1.1-py3-none-any.whl" in page.text("files")
    revision_link = f"/v1/locks/{digests['yanked']}/revisions/1"
    assert revision_link in page.links
    assert httpx.get(server.url + revision_link).status_code == 200
    for name in FILE_NAMES:  # every served format, from the one table of formats
        file_link = f"/v1/locks/{digests['yanked']}/{name}"
        assert file_link in page.links and httpx.get(server.url + file_link).status_code == 200

    tampered = _Page(httpx.get(server.url + f"/dashboard/locks/{digests['tampered']}").text)
    assert "tampered" in tampered.text("files") and "now has sha256" in tampered.text("files")
    missing = _Page(httpx.get(server.url + f"/dashboard/locks/{digests['missing']}").text)
    assert "gone" in missing.text("files")
    unresolvable = _Page(httpx.get(server.url + f"/dashboard/locks/{digests['unresolvable']}").text)
    assert "no-matching-distribution" in unresolvable.text("errors")
    current = _Page(httpx.get(server.url + f"/dashboard/locks/{digests['current']}").text)
    assert current.text("lock-status") == "current" and current.by_id.get("is-current") is not None
    unknown = httpx.get(server.url + "/dashboard/locks/" + "f" * 64)
    assert unknown.status_code == 404 and "no drift result" in unknown.text


def test_the_vulnerable_lock_page_lists_its_advisories_and_links_packages_to_why(
    drifted: tuple[LockdServer, dict[str, str]],
) -> None:
    server, digests = drifted
    digest = digests["vulnerable"]
    page = _Page(httpx.get(server.url + f"/dashboard/locks/{digest}").text)
    assert page.text("lock-status") == "vulnerable"
    assert page.text("advisory-check") == "1 known advisory affects its pins"
    listed = page.text("vulnerabilities")
    assert "lockd-fx-pyreq==1.0" in listed and "LOCKD-FX-2026-1" in listed and "CVE-2099-0001" in listed
    assert "critical (9.8)" in listed and "2.0" in listed
    assert "https://osv.dev/vulnerability/LOCKD-FX-2026-1" in page.links
    why = f"/v1/locks/{digest}/why/lockd-fx-pyreq"
    assert why in page.links and f"/v1/locks/{digest}/cyclonedx.json" in page.links
    assert (
        "canonical input requirement 1" in httpx.get(server.url + why, headers={"Accept": "text/plain"}).text
    )
    current = _Page(httpx.get(server.url + f"/dashboard/locks/{digests['current']}").text)
    assert current.text("advisory-check") == "0 known advisories affect its pins"
    assert current.by_id.get("vulnerabilities") is None
    overview = _Page(httpx.get(server.url + "/dashboard").text)
    assert overview.text("advisory-check") == "Advisories were checked for every lock."


def test_html_in_findings_renders_as_text(drifted: tuple[LockdServer, dict[str, str]]) -> None:
    """The yank reason comes from the index: it is data, never markup."""
    server, digests = drifted
    for path in (
        "/dashboard",
        f"/dashboard/locks/{digests['yanked']}",
        f"/dashboard/locks/{digests['unresolvable']}",
    ):
        body = httpx.get(server.url + path).text
        assert "<script>" not in body and "<b>bold</b>" not in body
    lock_page = httpx.get(server.url + f"/dashboard/locks/{digests['yanked']}").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in lock_page
    assert XSS in _Page(lock_page).text("files")  # and reads back as the literal text


def test_drift_gauges_follow_the_latest_complete_run(drifted: tuple[LockdServer, dict[str, str]]) -> None:
    server, _ = drifted
    text = httpx.get(server.url + "/metrics").text
    for kind in SCENARIO:
        assert metric_value(text, "lockd_drift_locks", status=kind) == 1
    assert metric_value(text, "lockd_drift_last_run_timestamp_seconds") > time.time() - 600
    assert metric_value(text, "lockd_drift_last_run_duration_seconds") > 0


def test_dashboard_before_any_run_says_so(database_url: str, start_lockd: StartLockd) -> None:
    server = start_lockd(database_url)
    body = httpx.get(server.url + "/dashboard").text
    assert "No drift run has completed yet" in body
    assert httpx.get(server.url + "/v1/drift").status_code == 404
    assert metric_value(httpx.get(server.url + "/metrics").text, "lockd_drift_locks", status="current") == 0


def test_the_in_process_scheduler_runs_drift_and_replicas_do_not_overlap(
    database_url: str, start_lockd: StartLockd, mutable_index: ControlledIndex
) -> None:
    """Two replicas on one database, each with a 1 s schedule: runs happen, never two at once."""
    first = start_lockd(database_url, index=mutable_index, LOCKD_DRIFT_INTERVAL="1")
    service = Service.open(first.settings())
    try:
        (digest,) = lock_inputs(service, {"outdated": "lockd-fx-pre"}).values()
    finally:
        service.close()
    start_lockd(database_url, index=mutable_index, LOCKD_DRIFT_INTERVAL="1")
    mutable_index.publish("lockd-fx-pre", "1.2")
    deadline = time.monotonic() + 30
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        latest = httpx.get(first.url + "/v1/drift")
        # a tick may land before the lock is stored: such a run rightly reports no locks
        locks = latest.json().get("locks", []) if latest.status_code == 200 else []
        if any(lock["input_digest"] == digest and lock["status"] == "outdated" for lock in locks):
            runs = [latest.json()["run"]]
            break
        time.sleep(0.2)
    assert runs, f"no scheduled run found the new release:\n{first.log()[-3000:]}"
    assert runs[0]["trigger"] == "schedule"
    service = Service.open(first.settings())
    try:
        history = DriftRuns(service).list(limit=200)
    finally:
        service.close()
    # runs never overlap: each starts after the previous one finished
    finished = [r for r in history if r.finished_at is not None]
    for before, after in itertools.pairwise(finished):
        assert after.started_at >= before.finished_at  # type: ignore[operator]
    # and one tick is run once, not once per replica
    ticks = [r.scheduled_for for r in history if r.status == "complete"]
    assert len(ticks) == len(set(ticks))
    assert digest
