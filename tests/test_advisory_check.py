"""lockd.advisory_check: answers per lock that never read an outage as "none", the lock-time
policy, the response headers, a drift run's circuit breaker, and the settings behind them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.advisories import AdvisoriesUnavailable, Advisory, AdvisoryDirectory, AdvisoryIndex, OsvApi
from lockd.advisory_check import AdvisoriesRefused, AdvisoryCheck, LockAdvisories, RefuseLevel, fixed_by
from lockd.config import InvalidConfiguration, load_settings
from lockd.drift import FINDING_KINDS, severity_order, worst
from lockd.errors import LockdError
from tests.osv_reference import FIXTURE_DIR, SEVEN_AFFECTED, lock_of, snapshot_index


class Flaky:
    """A source that answers from an index until told it is down; counts the questions."""

    description = "flaky test source"

    def __init__(self, index: AdvisoryIndex) -> None:
        self.index = index
        self.down = False
        self.asked = 0

    def affecting(self, pins: Mapping[NormalizedName, Version]) -> dict[NormalizedName, tuple[Advisory, ...]]:
        self.asked += 1
        if self.down:
            raise AdvisoriesUnavailable("flaky test source is down", context={"source": self.description})
        return self.index.affecting(pins)


@pytest.fixture
def flaky() -> Flaky:
    return Flaky(snapshot_index())


def test_a_lock_with_advisories_gets_their_ids_in_headers_and_json(flaky: Flaky) -> None:
    answer = AdvisoryCheck([flaky]).check(lock_of(SEVEN_AFFECTED))
    assert answer.status == "checked" and answer.error is None and answer.sources == ("flaky test source",)
    headers = answer.headers()
    assert headers["Lockd-Advisories"] == str(len(answer.vulnerabilities)) and len(answer.vulnerabilities) > 7
    assert headers["Lockd-Advisory-Ids"].split(", ")[:1] == [answer.vulnerabilities[0].advisory_id]
    assert LockAdvisories.from_json(json.loads(json.dumps(answer.to_json()))) == answer
    clean = AdvisoryCheck([flaky]).check(lock_of({"requests": "2.32.3"}))
    assert clean.headers() == {"Lockd-Advisories": "0"}


def test_no_source_is_off_and_adds_no_header() -> None:
    check = AdvisoryCheck([])
    answer = check.check(lock_of(SEVEN_AFFECTED))
    assert (answer.status, answer.vulnerabilities, answer.headers()) == ("off", (), {})
    assert check.cached("0" * 64) is not None and not check.enabled


def test_an_unavailable_source_is_never_no_advisories(flaky: Flaky) -> None:
    check = AdvisoryCheck([flaky])
    lock = lock_of(SEVEN_AFFECTED)
    flaky.down = True
    answer = check.check(lock)
    assert answer.status == "unavailable" and answer.vulnerabilities == ()
    assert "down" in (answer.error or "") and answer.headers() == {"Lockd-Advisories": "unavailable"}
    # for a while after, new locks are answered without asking (a hanging API would hold each one)
    asked = flaky.asked
    assert check.check(lock_of({"torch": "1.13.0"})).status == "unavailable" and flaky.asked == asked
    flaky.down = False
    assert check.check_now(lock).status == "checked", "asking now ends the outage"
    assert check.check(lock_of({"torch": "1.13.0"})).status == "checked"


def test_answers_are_kept_per_lock_digest(flaky: Flaky) -> None:
    check = AdvisoryCheck([flaky])
    lock = lock_of(SEVEN_AFFECTED)
    first = check.check(lock)
    asked = flaky.asked
    assert check.check(lock) is first and check.cached(lock.digest) is first and flaky.asked == asked
    assert check.check_now(lock) == first and flaky.asked == asked + 1


@pytest.mark.parametrize(
    ("level", "refused"),
    [
        ("high", {"aiohttp", "mlflow", "urllib3"}),  # rated high in the data (none is critical)
        ("critical", set()),
        ("any", set(SEVEN_AFFECTED)),  # unrated advisories too
        (None, set()),
    ],
)
def test_the_policy_refuses_at_a_level_and_names_the_advisories(
    flaky: Flaky, level: RefuseLevel | None, refused: set[str]
) -> None:
    check = AdvisoryCheck([flaky], refuse_at=level)
    lock = lock_of(SEVEN_AFFECTED)
    if not refused:
        assert check.screen(lock).status == "checked"
        return
    with pytest.raises(AdvisoriesRefused) as caught:
        check.screen(lock)
    error = caught.value
    assert (error.code, error.status) == ("advisories-refused", 409)
    named = error.context["advisories"]
    assert {a["package"] for a in named} == refused
    assert all(a["url"].startswith("https://osv.dev/vulnerability/") for a in named)
    if level == "high":
        assert {a["severity"]["level"] for a in named} == {"high"}
    assert LockdError.from_json(error.to_json()).code == "advisories-refused", "waiters re-raise it"


def test_a_proposed_lock_fixes_the_advisories_it_no_longer_has(flaky: Flaky) -> None:
    check = AdvisoryCheck([flaky])
    vulnerable = check.check(lock_of(SEVEN_AFFECTED)).vulnerabilities
    upgraded = dict(SEVEN_AFFECTED, requests="2.32.3", urllib3="2.0.6")  # urllib3: one of two fixed
    fixed = fixed_by(vulnerable, check.check(lock_of(upgraded)))
    assert {(v.package, v.advisory_id) for v in fixed} == {
        ("requests", "PYSEC-2023-74"),
        ("urllib3", "PYSEC-2023-192"),
    }
    assert fixed_by(vulnerable, check.check(lock_of(SEVEN_AFFECTED))) == ()
    flaky.down = True
    assert fixed_by(vulnerable, check.check(lock_of({"requests": "2.32.3"}))) == (), "an outage fixes nothing"


def test_the_policy_does_not_refuse_on_an_outage(flaky: Flaky) -> None:
    flaky.down = True
    check = AdvisoryCheck([flaky], refuse_at="any")
    assert check.screen(lock_of(SEVEN_AFFECTED)).status == "unavailable"


def test_a_run_stops_asking_after_the_first_outage(flaky: Flaky) -> None:
    run = AdvisoryCheck([flaky]).for_run()
    assert run.check(lock_of(SEVEN_AFFECTED)).status == "checked" and run.error is None
    flaky.down = True
    assert run.check(lock_of({"torch": "1.13.0"})).status == "unavailable"
    asked = flaky.asked
    flaky.down = False
    later = run.check(lock_of({"jinja2": "2.10"}))
    assert later.status == "unavailable" and flaky.asked == asked
    assert run.status == "unavailable" and run.error is not None and "down" in run.error
    assert AdvisoryCheck([]).for_run().status == "off"


def test_refresh_reads_a_changed_directory_and_forgets_kept_answers(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE_DIR / "vulns" / "requests", tmp_path / "requests")
    check = AdvisoryCheck([AdvisoryDirectory(tmp_path)])
    lock = lock_of({"requests": "2.25.0", "torch": "1.12.0"})
    assert {v.package for v in check.check(lock).vulnerabilities} == {"requests"}
    assert check.refresh() is False
    shutil.copytree(FIXTURE_DIR / "vulns" / "torch", tmp_path / "torch")
    assert check.refresh() is True
    assert {v.package for v in check.check(lock).vulnerabilities} == {"requests", "torch"}
    shutil.rmtree(tmp_path / "torch")
    shutil.rmtree(tmp_path / "requests")
    assert check.refresh() is False, "a failed re-read is logged, and the last good data stays"
    assert {v.package for v in check.check(lock).vulnerabilities} == {"requests", "torch"}


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("ADVISORIES_DIR", "OSV_URL", "VULNERABLE_AFTER", "REFUSE_ADVISORIES_AT"):
        monkeypatch.delenv(f"LOCKD_{name}", raising=False)
    yield


@pytest.mark.usefixtures("clean_environment")
def test_settings_build_the_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    off = load_settings()
    assert (off.advisories_dir, off.osv_url, off.refuse_advisories_at) == (None, None, None)
    assert off.severity_order == FINDING_KINDS
    monkeypatch.setenv("LOCKD_ADVISORIES_DIR", str(tmp_path))
    monkeypatch.setenv("LOCKD_OSV_URL", "http://127.0.0.1:9/osv")
    monkeypatch.setenv("LOCKD_OSV_TIMEOUT", "2.5")
    monkeypatch.setenv("LOCKD_REFUSE_ADVISORIES_AT", "HIGH")
    monkeypatch.setenv("LOCKD_VULNERABLE_AFTER", "yanked")
    settings = load_settings()
    check = AdvisoryCheck.from_settings(settings)
    try:
        directory, api = check.sources
        assert isinstance(directory, AdvisoryDirectory) and directory.root == tmp_path
        assert isinstance(api, OsvApi) and api.base_url == "http://127.0.0.1:9/osv" and api.timeout == 2.5
        assert check.refuse_at == "high"
    finally:
        check.close()
    assert settings.severity_order.index("vulnerable") == settings.severity_order.index("yanked") + 1


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOCKD_VULNERABLE_AFTER", "current"),
        ("LOCKD_VULNERABLE_AFTER", "bogus"),
        ("LOCKD_REFUSE_ADVISORIES_AT", "severe"),
        ("LOCKD_OSV_URL", "ftp://osv"),
        ("LOCKD_OSV_DEADLINE", "0"),
    ],
)
def test_bad_advisory_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfiguration, match=name):
        load_settings()


def test_the_severity_order_places_vulnerable_where_configured() -> None:
    assert severity_order() == FINDING_KINDS
    assert severity_order(vulnerable_after=None)[0] == "vulnerable"
    assert severity_order(vulnerable_after="outdated")[-2:] == ("vulnerable", "current")
    assert worst(["vulnerable", "unresolvable"]) == "vulnerable"
    assert worst(["vulnerable", "yanked"], severity_order(vulnerable_after="yanked")) == "yanked"
    assert worst(["vulnerable", "tampered"], severity_order(vulnerable_after=None)) == "vulnerable"
    with pytest.raises(ValueError, match="current"):
        severity_order(vulnerable_after="current")
