"""lockd.advisories on real OSV data: which pins advisories affect, against an independent evaluation.

The data is the PyPA Advisory Database snapshot in ../shared/advisories (2,600 records) where it
exists, else the curated real records in fixtures/advisories. Expected answers come from
`tests.osv_reference.simple_affected`, written apart from lockd's evaluator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.advisories import (
    AdvisoriesUnavailable,
    Advisory,
    AdvisoryDirectory,
    AdvisoryIndex,
    AffectedPackage,
    AffectedRange,
    AffectedVersions,
    InvalidAdvisory,
    RangeEvent,
    Severity,
    Vulnerability,
    load_advisory_directory,
    parse_osv,
    vulnerabilities,
)
from lockd.advisories import directory as advisory_directory
from lockd.advisories.severity import cvss3_base_score, severity_of
from lockd.errors import LockdError
from tests.osv_reference import (
    ADVISORIES_DIR,
    FIXTURE_DIR,
    SEVEN_AFFECTED,
    SEVEN_OUTSIDE,
    by_name,
    expected_ids,
    load_records,
    lock_of,
    simple_affected,
    snapshot_index,
    snapshot_records,
)


def found_ids(found: tuple[Vulnerability, ...]) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for finding in found:
        ids.setdefault(finding.package, set()).add(finding.advisory_id)
    return ids


def fixture_record(project: str, advisory_id: str) -> Advisory:
    path = FIXTURE_DIR / "vulns" / project / f"{advisory_id}.yaml"
    return parse_osv(yaml.load(path.read_bytes(), Loader=yaml.CBaseLoader))


# -- acceptance: the seven ML-stack packages ------------------------------------------------


def test_the_seven_packages_report_every_advisory_the_data_lists() -> None:
    expected = expected_ids(by_name(snapshot_records()), SEVEN_AFFECTED)
    assert set(expected) == set(SEVEN_AFFECTED), "every pin is one that advisories affect"
    records = snapshot_records()
    for ids in expected.values():  # else two of them would rightly be reported as one
        aliases = [{i, *records[i].get("aliases", [])} for i in ids]
        assert sum(len(a) for a in aliases) == len(set().union(*aliases))
    found = vulnerabilities(lock_of(SEVEN_AFFECTED), [snapshot_index()])
    assert found_ids(found) == expected
    assert "PYSEC-2022-43059" not in {f.advisory_id for f in found}, "withdrawn"
    torch = [f for f in found if f.package == "torch"]
    assert torch[0].version == Version("1.13.0+cu117") and Version("1.13.1") in torch[0].fixed_versions


def test_versions_outside_the_ranges_report_nothing() -> None:
    assert expected_ids(by_name(snapshot_records()), SEVEN_OUTSIDE) == {}
    assert vulnerabilities(lock_of(SEVEN_OUTSIDE), [snapshot_index()]) == ()


def probe_versions(record: dict[str, Any], name: str) -> set[Version]:
    """Every event version a record names for `name` and its neighbours (pre, post, local), the
    ends of its explicit list, and versions below and above everything."""
    events: set[str] = set()
    probes = {Version("0.0.1"), Version("999")}
    for entry in record.get("affected", []):
        if canonicalize_name(entry["package"]["name"]) != name:
            continue
        for affected_range in entry.get("ranges", []):
            for event in affected_range["events"]:
                events.update(event.values())
        listed = entry.get("versions", [])
        for text in listed[:1] + listed[-1:]:
            with contextlib.suppress(InvalidVersion):
                probes.add(Version(text))
    for text in events:
        for variant in (text, f"{text}rc1", f"{text}.post1", f"{text}+cu124"):
            with contextlib.suppress(InvalidVersion):
                probes.add(Version(variant))
    return probes


@pytest.mark.parametrize(
    "root",
    [
        pytest.param(FIXTURE_DIR, id="fixtures"),
        pytest.param(ADVISORIES_DIR, id="snapshot", marks=pytest.mark.slow),
    ],
)
def test_every_record_agrees_with_the_independent_evaluator(root: Path) -> None:
    records = snapshot_records() if root == ADVISORIES_DIR else load_records(root)
    index = snapshot_index() if root == ADVISORIES_DIR else load_advisory_directory(root)
    assert {a.id for a in index.advisories} == set(records)
    checked = 0
    for advisory in index.advisories:
        record = records[advisory.id]
        if advisory.withdrawn is not None:
            continue
        for name in {entry.name for entry in advisory.affected}:
            entries = [AffectedVersions(entry) for entry in advisory.affecting(name)]
            for version in probe_versions(record, name):
                ours = any(entry.covers(version) for entry in entries)
                assert ours == simple_affected(record, name, version), (advisory.id, name, str(version))
                checked += 1
    assert checked > 500


# -- ranges: PEP 440 semantics --------------------------------------------------------------


def entry(*events: tuple[str, str], versions: tuple[str, ...] = ()) -> AffectedVersions:
    range_events = tuple(RangeEvent(kind=kind, version=version) for kind, version in events)  # type: ignore[arg-type]
    return AffectedVersions(
        AffectedPackage(
            name=canonicalize_name("demo"), ranges=(AffectedRange(events=range_events),), versions=versions
        )
    )


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("1.0", True),
        ("1.26.16", True),
        ("1.26.17", False),
        ("1.26.17.post1", False),
        ("2.0.0rc1", False),  # a pre-release of `introduced` comes before it
        ("2.0.0", True),
        ("2.0.5+cu124", True),  # matched by its public version
        ("2.0.6rc1", True),  # a pre-release of the fix is not the fix
        ("2.0.6", False),
        ("3.0", False),
    ],
)
def test_several_intervals_in_one_range_out_of_order(version: str, affected: bool) -> None:
    """The shape of urllib3 PYSEC-2023-192: the 2.x interval listed before the 1.x one."""
    covered = entry(("introduced", "2.0.0"), ("fixed", "2.0.6"), ("introduced", "0"), ("fixed", "1.26.17"))
    assert covered.covers(Version(version)) is affected


def test_last_affected_includes_itself_and_its_local_builds() -> None:
    covered = entry(("introduced", "1.0"), ("last_affected", "1.5"))
    assert covered.covers(Version("1.5")) and covered.covers(Version("1.5+cu121"))
    assert not covered.covers(Version("1.5.post1")) and not covered.covers(Version("1.5.1"))
    assert not covered.covers(Version("1.0rc1")) and not covered.covers(Version("0.9"))


def test_limits_and_empty_intervals() -> None:
    assert entry(("introduced", "0"), ("limit", "2.0")).covers(Version("1.9"))
    assert not entry(("introduced", "0"), ("limit", "2.0")).covers(Version("2.0"))
    assert entry(("introduced", "0"), ("limit", "*")).covers(Version("99"))
    assert not entry(("introduced", "1.0"), ("fixed", "1.0")).covers(Version("1.0"))
    assert entry(("introduced", "0")).covers(Version("0.0.1.dev0"))


def test_explicit_versions_use_pep_440_equality() -> None:
    listed = AffectedVersions(
        AffectedPackage(name=canonicalize_name("demo"), ranges=(), versions=("1.0", "0.4m1"))
    )
    assert listed.covers(Version("1.0.0")) and listed.covers(Version("1.0+cpu"))
    assert not listed.covers(Version("1.0.1")) and not listed.covers(Version("1.0rc1"))


def test_a_range_that_is_not_pep_440_is_left_out_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    steam = fixture_record("steam", "PYSEC-2019-125")
    compiled = AffectedVersions(steam.affected[0])
    assert compiled.problems and "2019-09-12" in compiled.problems[0]
    assert not compiled.covers(Version("1.0"))
    with caplog.at_level(logging.WARNING, logger="lockd.advisories"):
        AdvisoryIndex([steam])
    assert "PYSEC-2019-125" in caplog.text and "2019-09-12" in caplog.text


def test_versions_only_and_last_affected_records() -> None:
    gratient = AffectedVersions(fixture_record("gratient", "PYSEC-2024-1").affected[0])
    assert gratient.covers(Version("0.5")) and not gratient.covers(Version("0.6"))
    py = AffectedVersions(fixture_record("py", "PYSEC-2022-42969").affected[0])
    assert py.covers(Version("1.11.0")) and not py.covers(Version("1.11.1"))


# -- the model -------------------------------------------------------------------------------


def test_an_osv_record_becomes_an_advisory() -> None:
    advisory = fixture_record("requests", "PYSEC-2023-74")
    assert advisory.id == "PYSEC-2023-74"
    assert advisory.aliases == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q")
    assert advisory.summary.startswith("Requests is a HTTP library.") and len(advisory.summary) <= 201
    assert advisory.url == "https://osv.dev/vulnerability/PYSEC-2023-74"
    (requests,) = advisory.affected
    assert requests.name == "requests" and requests.fixed == ("2.31.0",)  # the GIT range is dropped
    assert "2.30.0" in requests.versions
    assert advisory.withdrawn is None and advisory.modified == "2023-06-05T01:13:00.534973Z"
    assert fixture_record("aiohttp", "PYSEC-2022-43059").withdrawn == "2023-11-08T00:54:24Z"


def test_every_advisory_round_trips_through_json_by_value() -> None:
    advisories = [*load_advisory_directory(FIXTURE_DIR).advisories, *snapshot_index().advisories]
    for advisory in advisories:
        assert Advisory.from_json(json.loads(json.dumps(advisory.to_json()))) == advisory


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"affected": []},
        {"id": "X-1", "affected": {}},
        {"id": "X-1", "affected": [{"package": {}}]},
        {
            "id": "X-1",
            "affected": [
                {
                    "package": {"name": "a", "ecosystem": "PyPI"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}],
                }
            ],
        },
    ],
)
def test_records_that_are_not_osv_say_why(data: object) -> None:
    with pytest.raises(InvalidAdvisory) as caught:
        parse_osv(data)
    assert caught.value.code == "invalid-advisory" and caught.value.message


def test_other_ecosystems_are_dropped() -> None:
    advisory = parse_osv(
        {
            "id": "X-1",
            "affected": [{"package": {"name": "lodash", "ecosystem": "npm"}, "versions": ["4.17.0"]}],
        }
    )
    assert advisory.affected == ()


# -- severity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N", 8.1),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N", 6.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 5.5),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N", 5.3),
        ("CVSS:3.1/AV:A/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N", 4.2),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss3_base_scores(vector: str, score: float) -> None:
    assert cvss3_base_score(vector) == score


def test_severity_levels_from_vectors_or_the_database() -> None:
    assert cvss3_base_score("CVSS:3.1/AV:N") is None
    assert cvss3_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") is None
    critical = severity_of([("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")], None)
    assert critical == Severity(
        level="critical", score=9.8, vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    )
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    assert severity_of([("CVSS_V4", v4)], "MODERATE") == Severity(level="medium", score=None, vector=v4)
    assert severity_of([], None) is None
    assert severity_of([], "HIGH") == Severity(level="high", score=None, vector=None)
    assert (
        critical is not None
        and critical.at_least("high")
        and not Severity(level=None, score=None, vector=None).at_least("low")
    )
    assert Severity.from_json(critical.to_json()) == critical
    aiohttp = fixture_record("aiohttp", "PYSEC-2023-250").severity
    assert aiohttp is not None and aiohttp.level is not None and aiohttp.score is not None


# -- the directory source --------------------------------------------------------------------


def test_files_that_do_not_parse_are_skipped_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "requests" / "PYSEC-2023-74.yaml"
    good.parent.mkdir()
    shutil.copy(FIXTURE_DIR / "vulns" / "requests" / "PYSEC-2023-74.yaml", good)
    torch = yaml.load(
        (FIXTURE_DIR / "vulns" / "torch" / "PYSEC-2022-43015.yaml").read_bytes(), Loader=yaml.CBaseLoader
    )
    (tmp_path / "torch.json").write_text(json.dumps(torch))
    bad = {
        "broken.yaml": b"id: X\naffected: [\n",
        "list.yml": b"- not\n- a record\n",
        "noid.json": b'{"affected": []}',
        "truncated.json": b'{"id": "X-2", "aff',
        "latin1.yaml": b"id: X-3\ndetails: caf\xe9\n",
        "huge.yaml": b"id: X-4\ndetails: " + b"x" * 5000 + b"\n",
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "ignored.yaml").write_bytes(b"- not read\n")
    (tmp_path / "notes.txt").write_text("not an advisory")
    monkeypatch.setattr(advisory_directory, "MAX_FILE_BYTES", 4096)
    with caplog.at_level(logging.WARNING, logger="lockd.advisories"):
        index = load_advisory_directory(tmp_path)
    assert sorted(a.id for a in index.advisories) == ["PYSEC-2022-43015", "PYSEC-2023-74"]
    assert sorted(Path(s.path).name for s in index.skipped) == sorted(bad)
    reasons = {Path(s.path).name: s.reason for s in index.skipped}
    assert "not valid YAML" in reasons["broken.yaml"] and "not valid JSON" in reasons["truncated.json"]
    assert "no `id`" in reasons["noid.json"] and "4096" in reasons["huge.yaml"]
    for name in bad:
        assert f"{name} skipped" in caplog.text
    found = vulnerabilities(lock_of({"torch": "1.12.0", "requests": "2.30.0"}), [index])
    assert found_ids(found) == {"torch": {"PYSEC-2022-43015"}, "requests": {"PYSEC-2023-74"}}


def test_a_missing_or_empty_directory_is_unavailable_not_empty(tmp_path: Path) -> None:
    for root in (tmp_path / "absent", tmp_path):
        source = AdvisoryDirectory(root)
        with pytest.raises(AdvisoriesUnavailable) as caught:
            vulnerabilities(lock_of({"requests": "2.25.0"}), [source])
        assert caught.value.code == "advisories-unavailable" and caught.value.status == 503
        assert caught.value.context["source"] == f"advisory directory {root}"
        assert LockdError.from_json(caught.value.to_json()).code == "advisories-unavailable"


def test_refresh_reads_the_directory_again_only_when_it_changed(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE_DIR / "vulns" / "requests", tmp_path / "requests")
    source = AdvisoryDirectory(tmp_path)
    lock = lock_of({"requests": "2.25.0", "torch": "1.12.0"})
    assert set(found_ids(vulnerabilities(lock, [source]))) == {"requests"}
    assert source.refresh() is False
    shutil.copytree(FIXTURE_DIR / "vulns" / "torch", tmp_path / "torch")
    assert source.refresh() is True
    assert set(found_ids(vulnerabilities(lock, [source]))) == {"requests", "torch"}
    shutil.rmtree(tmp_path / "torch")
    shutil.rmtree(tmp_path / "requests")
    with pytest.raises(AdvisoriesUnavailable):
        source.refresh()
    assert set(found_ids(vulnerabilities(lock, [source]))) == {"requests", "torch"}, (
        "the last good index stays"
    )


# -- findings --------------------------------------------------------------------------------


def test_a_finding_says_what_fixes_it_and_whether_the_requirements_allow_it() -> None:
    requests = AdvisoryIndex([fixture_record("requests", "PYSEC-2023-74")])
    pinned = vulnerabilities(lock_of({"requests": "2.25.0"}), [requests])
    (finding,) = pinned
    assert finding.advisory_id == "PYSEC-2023-74"
    assert finding.aliases == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q")
    assert finding.fixed_versions == (Version("2.31.0"),)
    assert not finding.fix_within_requirements
    assert finding.message.endswith("fixed in 2.31.0, which the lock's requirements exclude")
    assert finding.url == "https://osv.dev/vulnerability/PYSEC-2023-74"
    (open_ended,) = vulnerabilities(
        lock_of({"requests": "2.25.0"}, requirements=["requests>=2.20"]), [requests]
    )
    assert open_ended.fix_within_requirements
    assert Vulnerability.from_json(json.loads(json.dumps(finding.to_json()))) == finding


@pytest.mark.parametrize(
    ("constraints", "within"),
    [
        ([], True),
        (["urllib3<2"], True),
        (["urllib3>=2,<2.0.5"], False),
        (['urllib3<2.0.5; sys_platform == "win32"'], True),
    ],
)
def test_a_fix_on_another_branch_counts_when_the_constraints_allow_it(
    constraints: list[str], within: bool
) -> None:
    """urllib3 PYSEC-2023-192 is fixed in 1.26.17 and 2.0.6; constraints apply on the lock's target only."""
    urllib3 = AdvisoryIndex([fixture_record("urllib3", "PYSEC-2023-192")])
    lock = lock_of({"urllib3": "2.0.3"}, requirements=["urllib3"], constraints=constraints)
    (finding,) = vulnerabilities(lock, [urllib3])
    assert finding.fixed_versions == (Version("1.26.17"), Version("2.0.6"))
    assert finding.fix_within_requirements is within


def test_the_same_vulnerability_under_two_ids_or_from_two_sources_is_reported_once() -> None:
    pysec = fixture_record("requests", "PYSEC-2023-74")
    ghsa = dataclasses.replace(pysec, id="GHSA-j8r2-6x86-q33q", aliases=("CVE-2023-32681",), severity=None)
    lock = lock_of({"requests": "2.25.0"})
    (finding,) = vulnerabilities(lock, [AdvisoryIndex([pysec]), AdvisoryIndex([ghsa, pysec])])
    assert finding.advisory_id == "PYSEC-2023-74"
    assert finding.aliases == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q")


def test_one_unavailable_source_makes_the_check_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AdvisoriesUnavailable):
        vulnerabilities(lock_of(SEVEN_AFFECTED), [snapshot_index(), AdvisoryDirectory(tmp_path / "gone")])
    assert vulnerabilities(lock_of(SEVEN_AFFECTED), []) == ()
