"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

Loads the dashboard from a live server whose store holds findings of every kind, checks what
a person sees, follows a lock to its diff with JavaScript disabled (the page needs none), and
saves screenshots whose paths are printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import SCENARIO, XSS, LockdServer

if TYPE_CHECKING:  # Playwright is imported only where Chromium can run (importorskip below)
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_dashboard_in_chromium_shows_every_kind_and_leads_to_a_diff(
    browser: Browser, drifted: tuple[LockdServer, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server, digests = drifted
    shots = tmp_path_factory.mktemp("screenshots")
    # No JavaScript at all: everything must be readable and navigable without it.
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        response = page.goto(server.url + "/dashboard")
        assert response is not None and response.status == 200
        for kind in SCENARIO:
            card = page.locator(f"#count-{kind}")
            assert card.is_visible()
            assert card.inner_text().split() == ["1", kind.upper()]  # CSS upper-cases the label
        rows = page.locator("#locks tbody tr")
        assert rows.count() == len(SCENARIO)
        shown = [rows.nth(i).get_attribute("data-status") for i in range(rows.count())]
        # Most severe first; `vulnerable` sits just below `missing` by default (LOCKD_VULNERABLE_AFTER).
        assert shown == ["tampered", "missing", "vulnerable", "unresolvable", "yanked", "outdated", "current"]
        assert page.locator("#history rect").count() >= len(SCENARIO)
        assert page.locator("#history").is_visible()
        assert "Last complete run" in page.locator("#last-run").inner_text()
        overview = shots / "dashboard.png"
        page.screenshot(path=str(overview), full_page=True)
        print(f"\ndashboard screenshot: {overview}")

        # Filter by clicking the "tampered" card: a plain link.
        page.locator("#count-tampered").click()
        page.wait_for_url("**/dashboard?status=tampered")
        assert page.locator("#locks tbody tr").count() == 1

        # Follow the yanked lock to its diff.
        page.goto(server.url + "/dashboard?status=yanked")
        page.locator(f'a[href="/dashboard/locks/{digests["yanked"]}"]').click()
        page.wait_for_url(f"**/dashboard/locks/{digests['yanked']}")
        assert page.locator("#lock-status").inner_text() == "yanked"
        versions = page.locator("#versions").inner_text()
        assert (
            "lockd-fx-plain" in versions
            and "1.1" in versions
            and "1.0" in versions
            and "downgrade" in versions
        )
        files = page.locator("#files").inner_text()
        assert "lockd_fx_plain-1.1-py3-none-any.whl" in files
        assert XSS in files  # the yank reason shows as text, not as markup
        assert page.locator("#files script").count() == 0 and page.locator("#files b").count() == 0
        revision = page.locator(f'#revisions a[href="/v1/locks/{digests["yanked"]}/revisions/1"]')
        assert revision.is_visible()
        diff = shots / "lock-diff.png"
        page.screenshot(path=str(diff), full_page=True)
        print(f"lock diff screenshot: {diff}")

        page.goto(server.url + f"/dashboard/locks/{digests['tampered']}")
        assert "now has sha256" in page.locator("#files").inner_text()
        tampered = shots / "lock-tampered.png"
        page.screenshot(path=str(tampered), full_page=True)
        print(f"tampered lock screenshot: {tampered}")
    finally:
        context.close()
    assert overview.stat().st_size > 10_000 and diff.stat().st_size > 10_000
