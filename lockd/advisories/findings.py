"""A lock's pinned versions that advisories affect: one `Vulnerability` per package and advisory.

Every source is asked about every pin; the same vulnerability published under several ids (a
PYSEC record and its GHSA twin, or one record from two sources) is reported once, under the id
seen first, with the others among its aliases. Each finding says which versions fix it and
whether one of them is within the lock's own requirements: the root requirements and
constraints that name the package (their markers evaluated for the lock's target). A lock does
not record the specifiers a parent package puts on its dependencies, so a fix "within the
requirements" can still be excluded by a parent; it is the first thing to try, not a promise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.advisories.model import Advisory
from lockd.advisories.ranges import AffectedVersions
from lockd.advisories.severity import Severity
from lockd.advisories.source import AdvisorySource
from lockd.lock import Lock
from lockd.why import constraints_by_name, requirements_by_name

__all__ = ["Vulnerability", "vulnerabilities"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Vulnerability:
    """One advisory that affects one pinned version."""

    package: NormalizedName
    version: Version
    advisory_id: str
    aliases: tuple[str, ...]  # CVE, GHSA and other ids of the same vulnerability
    summary: str
    severity: Severity | None
    fixed_versions: tuple[Version, ...]
    fix_within_requirements: bool  # a fixed version satisfies the lock's requirements and constraints
    url: str

    @property
    def message(self) -> str:
        """`requests 2.25.0: PYSEC-2023-74 (CVE-2023-32681, GHSA-…): <summary>; fixed in 2.31.0`."""
        ids = self.advisory_id + (f" ({', '.join(self.aliases)})" if self.aliases else "")
        if not self.fixed_versions:
            fix = "no fixed version is known"
        else:
            fix = "fixed in " + ", ".join(str(v) for v in self.fixed_versions)
            if not self.fix_within_requirements:
                fix += ", which the lock's requirements exclude"
        return f"{self.package} {self.version}: {ids}: {self.summary}; {fix}"

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": str(self.version),
            "advisory_id": self.advisory_id,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "severity": None if self.severity is None else self.severity.to_json(),
            "fixed_versions": [str(v) for v in self.fixed_versions],
            "fix_within_requirements": self.fix_within_requirements,
            "url": self.url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vulnerability:
        severity = data["severity"]
        return cls(
            package=canonicalize_name(data["package"]),
            version=Version(data["version"]),
            advisory_id=data["advisory_id"],
            aliases=tuple(data["aliases"]),
            summary=data["summary"],
            severity=None if severity is None else Severity.from_json(severity),
            fixed_versions=tuple(Version(v) for v in data["fixed_versions"]),
            fix_within_requirements=bool(data["fix_within_requirements"]),
            url=data["url"],
        )


def _same_vulnerability(advisories: Sequence[Advisory]) -> list[list[Advisory]]:
    """Advisories grouped when their ids and aliases overlap, in the order first seen."""
    groups: list[tuple[set[str], list[Advisory]]] = []
    for advisory in advisories:
        keys = {advisory.id, *advisory.aliases}
        matching = [group for group in groups if group[0] & keys]
        if not matching:
            groups.append((keys, [advisory]))
            continue
        first_keys, first_members = matching[0]
        first_keys.update(keys)
        first_members.append(advisory)
        for other in matching[1:]:
            first_keys.update(other[0])
            first_members.extend(other[1])
            groups.remove(other)
    return [members for _keys, members in groups]


def _fixed_versions(advisories: Sequence[Advisory], name: NormalizedName) -> tuple[Version, ...]:
    fixed: set[Version] = set()
    for advisory in advisories:
        for entry in advisory.affecting(name):
            for text in entry.fixed:
                try:
                    fixed.add(Version(text))
                except InvalidVersion:
                    continue  # a fix nobody can pin is no help
    return tuple(sorted(fixed))


def _fix_within(
    requirements: Sequence[Requirement],
    name: NormalizedName,
    advisories: Sequence[Advisory],
    fixed: Sequence[Version],
) -> bool:
    """A fixed version the requirements admit and no range of the same advisories still covers.

    Ranges only: a fixed event's version that the same record also lists as affected is a
    contradiction in the data, and checking for it would parse every listed version per finding.
    """
    entries = [AffectedVersions(entry) for advisory in advisories for entry in advisory.affecting(name)]
    for version in fixed:
        if any(entry.ranges_cover(version) for entry in entries):
            continue  # fixes one branch, still affected on another range of the same advisory
        if all(r.specifier.contains(version, prereleases=True) for r in requirements):
            return True
    return False


def _finding(
    name: NormalizedName, version: Version, group: Sequence[Advisory], requirements: Sequence[Requirement]
) -> Vulnerability:
    primary = group[0]
    ids = {alias for advisory in group for alias in (advisory.id, *advisory.aliases)}
    fixed = _fixed_versions(group, name)
    return Vulnerability(
        package=name,
        version=version,
        advisory_id=primary.id,
        aliases=tuple(sorted(ids - {primary.id})),
        summary=next((a.summary for a in group if a.summary), ""),
        severity=next((a.severity for a in group if a.severity is not None), None),
        fixed_versions=fixed,
        fix_within_requirements=_fix_within(requirements, name, group, fixed),
        url=primary.url,
    )


def vulnerabilities(lock: Lock, sources: Sequence[AdvisorySource]) -> tuple[Vulnerability, ...]:
    """Every advisory the sources know for the lock's pins, by package then advisory id.

    Raises `AdvisoriesUnavailable` when any source cannot answer: a partial answer would read
    as "these are all", which is the mistake this check exists to prevent.
    """
    pins = lock.pins
    per_package: dict[NormalizedName, list[Advisory]] = {}
    for source in sources:
        for name, advisories in source.affecting(pins).items():
            if name in pins:
                per_package.setdefault(name, []).extend(sorted(advisories, key=lambda a: a.id))
    roots, constraints = requirements_by_name(lock), constraints_by_name(lock)
    findings: list[Vulnerability] = []
    for name, found in per_package.items():
        requirements = [*roots.get(name, ()), *constraints.get(name, ())]
        findings.extend(
            _finding(name, pins[name], group, requirements) for group in _same_vulnerability(found)
        )
    return tuple(sorted(findings, key=lambda f: (f.package, f.advisory_id)))
