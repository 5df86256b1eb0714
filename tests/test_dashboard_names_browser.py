"""The named-lock dashboard in Chromium, with anonymous reads off: sign in with a token, see every
name (checked or not yet) with its reason, follow one to its findings, proposal diff, promote
command and history, and each revision's diff. JavaScript stays off; screenshots are saved."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import CHROMIUM, CHROMIUM_ARGS, LockdServer, files_of

pytestmark = pytest.mark.browser
TARGET = {"platform": "linux_x86_64", "python": "3.11"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _named(client: httpx.Client, name: str, body: str) -> httpx.Response:
    response = client.post(
        "/lock", params={**TARGET, "name": name}, content=body, headers={"content-type": "text/plain"}
    )
    assert response.status_code in (200, 201), response.text
    return response


@pytest.mark.parametrize("backend", ["sqlite"])  # what the browser sees does not depend on the database
def test_sign_in_then_act_from_the_dashboard(
    browser: Any,
    start_lockd: Callable[..., LockdServer],
    database_url: str,
    mutable_index: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_lockd(database_url, index=mutable_index, LOCKD_ANONYMOUS_READ="false", LOCKD_PAGE_TTL="0")
    with server.client("lock") as locker, server.client("admin") as admin:
        _named(locker, "vision/trainer", "lockd-fx-extras\n")
        mutable_index.publish("lockd-fx-plain", "1.2")
        _named(locker, "vision/trainer", "lockd-fx-extras\nlockd-fx-speedups\n")
        for filename in files_of(mutable_index, "lockd-fx-plain", "1.1"):
            mutable_index.yank(filename, "broken wheel")
        assert admin.post("/v1/drift/runs", params={"wait": "true"}).status_code == 200
        _named(locker, "audio/tts", "lockd-fx-pyreq\n")  # after the run: not checked yet
    shots = tmp_path_factory.mktemp("name-screenshots")
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/dashboard/names/vision/trainer")
        assert "/dashboard/sign-in" in page.url
        page.screenshot(path=str(shots / "sign-in.png"), full_page=True)
        page.fill("#token", "lockd_not-a-token")
        page.click("#sign-in button")
        assert "unknown, revoked or expired" in page.locator("#sign-in-error").inner_text()
        page.fill("#token", server.tokens["read"])
        page.click("#sign-in button")
        page.wait_for_url("**/dashboard/names/vision/trainer")
        (cookie,) = [c for c in context.cookies() if c["name"] == "lockd_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
        assert cookie["value"] != server.tokens["read"]
        # The cookie opens the dashboard only: the API never reads it.
        api = httpx.get(server.url + "/v1/names", cookies={"lockd_session": cookie["value"]})
        assert api.status_code == 401

        page.goto(server.url + "/dashboard")
        rows = page.locator("#names tbody tr")
        assert [rows.nth(i).get_attribute("data-name") for i in range(rows.count())] == [
            "audio/tts",
            "vision/trainer",
        ]
        assert [rows.nth(i).get_attribute("data-status") for i in range(rows.count())] == [
            "unchecked",
            "yanked",
        ]
        assert "not checked yet" in rows.nth(0).inner_text()
        assert "was yanked (broken wheel)" in rows.nth(1).locator(".reason").inner_text()
        assert "py3.11.0 · none" in rows.nth(1).inner_text()  # no variant is "none", not "cpu"
        page.screenshot(path=str(shots / "dashboard-names.png"), full_page=True)

        page.locator('a[href="/dashboard/names/vision/trainer"]').click()
        assert page.locator("#name-status").inner_text() == "yanked"
        assert "lockd-fx-plain" in page.locator("#findings").inner_text()
        change = page.locator('#changes tr[data-package="lockd-fx-plain"]').inner_text()
        assert "1.1" in change and "1.2" in change and "yanked, newer" in change
        command = page.locator("#promote-command").inner_text()
        assert command.startswith('curl -fsS -X POST -H "Authorization: Bearer $LOCKD_TOKEN" ')
        assert command.endswith("/v1/names/vision/trainer/proposals/1/promote")
        assert page.locator('a[href^="/v1/"][href$=".json"]').count() == 0  # pages, not raw JSON
        page.screenshot(path=str(shots / "name.png"), full_page=True)

        with server.client("lock") as locker:
            assert locker.post("/v1/names/vision/trainer/proposals/1/promote").status_code == 200
        page.reload()
        assert page.locator("#no-proposal").is_visible()
        page.locator('#history-table tr[data-action="promoted"] a[href*="/revisions/2"]').click()
        diff = page.locator("#changes").inner_text()
        assert "lockd-fx-plain" in diff and "upgrade" in diff and "lockd-fx-speedups" not in diff
        page.screenshot(path=str(shots / "revision-diff.png"), full_page=True)
        page.goto(server.url + "/dashboard/proposals/1")
        assert page.locator("#proposal-status").inner_text() == "promoted"
        page.screenshot(path=str(shots / "proposal.png"), full_page=True)
        print(f"\nscreenshots: {shots}")

        page.request.post(server.url + "/dashboard/sign-out")
        context.clear_cookies()
        page.goto(server.url + "/dashboard")
        assert "/dashboard/sign-in" in page.url
    finally:
        context.close()
    for shot in ("sign-in", "dashboard-names", "name", "revision-diff", "proposal"):
        assert (shots / f"{shot}.png").stat().st_size > 10_000
