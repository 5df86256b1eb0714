"""Drift: compare a stored lock with the index today and with a fresh resolution.

Pure comparison. The only I/O goes through the `IndexSource` passed in (the index client
satisfies it), so the service decides concurrency, time budgets and storage. A lock drifts
in two independent ways:

* its pinned files changed on the index — `yanked` (PEP 592), `missing` (the file is gone
  from the project page), `tampered` (same filename, different sha256; when the index gives
  no hash the file is re-hashed by streaming);
* a fresh resolution of the same input differs — `outdated`, with one finding per package
  upgraded, downgraded, added or removed — or fails — `unresolvable`, with the error code;
* an advisory affects a pinned version — `vulnerable`, one finding per package and advisory
  (`lockd.advisories` finds them; the run passes them in, with whether the check ran).

A lock with none of these is `current`. Its status is its most severe finding, in the severity
order of the kind table, or in the order the operator configured (`severity_order`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.errors import IndexUnavailable, LockdError, NotFound, UnknownProject
from lockd.finding_kinds import (
    ALERT_KINDS,
    FILE_KINDS,
    FINDING_KIND_TABLE,
    FINDING_KINDS,
    SEVERITY,
    FindingKind,
    FindingKindInfo,
    parse_kinds,
    severity_order,
    worst,
)
from lockd.lock import Lock, LockedFile, LockedPackage
from lockd.simple import DistFile, ProjectPage

if TYPE_CHECKING:
    # Only annotations: importing advisories (OSV sources, httpx) cost `lockd lock` ~0.5 s at start.
    from lockd.advisories import Vulnerability

__all__ = [
    "ADVISORY_STATUSES",
    "ALERT_KINDS",
    "CHANGE_KINDS",
    "FILE_KINDS",
    "FINDING_KINDS",
    "FINDING_KIND_TABLE",
    "SEVERITY",
    "AdvisoryStatus",
    "ChangeKind",
    "DriftReport",
    "DriftRunInProgress",
    "Finding",
    "FindingKind",
    "FindingKindInfo",
    "IndexSource",
    "check_files",
    "compare_locks",
    "drift_for",
    "parse_kinds",
    "severity_order",
    "vulnerable_findings",
    "why_pins_moved",
    "worst",
]

ChangeKind = Literal["upgrade", "downgrade", "added", "removed"]
# Whether a run (and each lock in it) was checked against advisories: `unavailable` is a
# source that could not answer, never "no advisories"; `off` is no source configured.
AdvisoryStatus = Literal["checked", "unavailable", "off"]


CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)
ADVISORY_STATUSES: tuple[AdvisoryStatus, ...] = get_args(AdvisoryStatus)


class DriftRunInProgress(LockdError):
    """Another drift run holds the lease; runs never overlap, across replicas too."""

    code = "drift-run-in-progress"
    status = 409
    title = "A drift run is already in progress"


class IndexSource(Protocol):
    """What drift needs from the index: project pages, and a file's hash when none is listed.

    `project_page` raises `UnknownProject` (or `NotFound`) when the project is gone and
    `IndexUnavailable` when the index cannot answer; `file_sha256` streams the file (cost:
    one full download, cached by the client).
    """

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage: ...

    def file_sha256(self, file: DistFile) -> str: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that changed for one lock. Fields that do not apply to the kind are None."""

    kind: FindingKind
    message: str
    package: NormalizedName | None = None
    filename: str | None = None
    old_version: Version | None = None
    new_version: Version | None = None
    old_sha256: str | None = None
    new_sha256: str | None = None
    change: ChangeKind | None = None
    code: str | None = None  # the LockdError code, for `unresolvable`
    advisory: Vulnerability | None = None  # for `vulnerable`: ids, severity, fixed versions


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The verdict on one stored lock in one run."""

    input_digest: str
    lock_digest: str
    status: FindingKind
    findings: tuple[Finding, ...]
    fresh_lock_digest: str | None  # None when the fresh resolution failed
    advisories: AdvisoryStatus = "off"


def _file_findings(
    package: LockedPackage, locked: LockedFile, listed: DistFile | None, index: IndexSource
) -> list[Finding]:
    where = f"{package.pin}: {locked.filename}"
    if listed is None:
        return [
            Finding(
                kind="missing",
                message=f"{where} is no longer on {package.index or locked.url}",
                package=package.name,
                filename=locked.filename,
                old_version=package.version,
                old_sha256=locked.sha256,
            )
        ]
    findings: list[Finding] = []
    # An index that lists no hash (some PyTorch files) must still be checked: stream and hash.
    today = listed.sha256 if listed.sha256 is not None else index.file_sha256(listed)
    if today.lower() != locked.sha256.lower():
        findings.append(
            Finding(
                kind="tampered",
                message=f"{where} now has sha256 {today}, the lock pins {locked.sha256}",
                package=package.name,
                filename=locked.filename,
                old_version=package.version,
                old_sha256=locked.sha256,
                new_sha256=today.lower(),
            )
        )
    if listed.yanked is not None:
        reason = f" ({listed.yanked})" if listed.yanked else ""
        findings.append(
            Finding(
                kind="yanked",
                message=f"{where} was yanked{reason}",
                package=package.name,
                filename=locked.filename,
                old_version=package.version,
                old_sha256=locked.sha256,
            )
        )
    return findings


def _direct_file(package: LockedPackage, locked: LockedFile, index: IndexSource) -> DistFile | None:
    """A wheel named by URL, as if listed without a hash (so it is streamed); None when it is gone."""
    file = DistFile.of(
        name=package.name, version=package.version, filename=locked.filename, url=locked.url, kind="wheel",
        tags=frozenset(), sha256=None, size=locked.size, requires_python=None, yanked=None, upload_time=None,
        metadata_url=None, metadata_sha256=None,
    )  # fmt: skip
    try:
        index.file_sha256(file)  # the client caches it: `_file_findings` asks again for free
    except IndexUnavailable as exc:
        if exc.context.get("status") in (404, 410):
            return None
        raise
    return file


def check_files(lock: Lock, index: IndexSource) -> list[Finding]:
    """Re-check every pinned file of `lock` against the index today.

    One project page per package; a file is re-hashed only when the index lists no hash.
    A project that is gone altogether makes each of its files `missing`. `IndexUnavailable`
    propagates: an outage is not evidence that anything changed.
    """
    findings: list[Finding] = []
    for package in lock.packages:
        if package.direct:
            for locked in package.files:
                findings.extend(_file_findings(package, locked, _direct_file(package, locked, index), index))
            continue
        try:
            page: ProjectPage | None = index.project_page(package.index, package.name)
        except (UnknownProject, NotFound):
            page = None
        listed = {} if page is None else {f.filename: f for f in page.files}
        for locked in package.files:
            findings.extend(_file_findings(package, locked, listed.get(locked.filename), index))
    return findings


def why_pins_moved(lock: Lock, index: IndexSource) -> list[Finding]:
    """The file findings on an old lock (yanked, missing, tampered): the reasons in a proposal.

    Cheap after a resolution on the same client: its pages are in memory. An index that cannot
    answer leaves the reasons to the diff itself (newer, older, required…)."""
    try:
        return check_files(lock, index)
    except LockdError:
        return []


def compare_locks(old: Lock, new: Lock) -> list[Finding]:
    """One `outdated` finding per package whose pin differs, sorted by package name."""
    old_pins = old.pins
    new_pins = new.pins
    findings: list[Finding] = []
    for name in sorted(set(old_pins) | set(new_pins)):
        before = old_pins.get(name)
        after = new_pins.get(name)
        if before == after:
            continue
        change: ChangeKind
        if before is None:
            change, message = "added", f"{name}=={after} is now required"
        elif after is None:
            change, message = "removed", f"{name}=={before} is no longer required"
        elif after > before:
            change, message = "upgrade", f"{name} {before} → {after}"
        else:
            change, message = "downgrade", f"{name} {before} → {after}"
        findings.append(
            Finding(
                kind="outdated",
                message=message,
                package=canonicalize_name(name),
                old_version=before,
                new_version=after,
                change=change,
            )
        )
    return findings


def vulnerable_findings(found: Iterable[Vulnerability]) -> list[Finding]:
    """One `vulnerable` finding per package and advisory."""
    return [
        Finding(kind="vulnerable", message=v.message, package=v.package, old_version=v.version, advisory=v)
        for v in found
    ]


def drift_for(
    lock: Lock,
    fresh: Lock | LockdError,
    file_findings: Iterable[Finding],
    *,
    vulnerabilities: Iterable[Vulnerability] = (),
    advisories: AdvisoryStatus = "off",
    order: Sequence[FindingKind] = FINDING_KINDS,
) -> DriftReport:
    """Combine the file checks, the fresh resolution (or its error) and the advisories into one verdict."""
    findings = list(file_findings)
    findings.extend(vulnerable_findings(vulnerabilities))
    fresh_digest: str | None = None
    if isinstance(fresh, LockdError):
        findings.append(
            Finding(
                kind="unresolvable",
                message=f"the input no longer resolves: {fresh.message}",
                code=fresh.code,
            )
        )
    else:
        fresh_digest = fresh.digest
        findings.extend(compare_locks(lock, fresh))
    status = worst((f.kind for f in findings), order)
    if not findings:
        message = "the lock matches the index and a fresh resolution"
        if advisories == "checked":
            message += ", and no known advisory affects its pins"
        findings.append(Finding(kind="current", message=message))
    return DriftReport(
        input_digest=lock.input_digest,
        lock_digest=lock.digest,
        status=status,
        findings=tuple(findings),
        fresh_lock_digest=fresh_digest,
        advisories=advisories,
    )
