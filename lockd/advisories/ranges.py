"""Does an advisory's affected entry cover a pinned version? OSV ranges under PEP 440 ordering.

The OSV algorithm (https://ossf.github.io/osv-schema/#evaluation): sort a range's events by
version, walk them, and a version is affected when the last event at or below it is an
`introduced` (`introduced: "0"` is before every version; `fixed` excludes its own version,
`last_affected` includes its own). Several introduced/fixed pairs in one range are several
intervals; a `limit` bounds the whole range from above. An entry covers a version when any of its
ranges does or its explicit `versions` list names it. Ordering and equality are PEP 440's, from
packaging: `1.0 == 1.0.0`, `2.0.0rc1 < 2.0.0` (a pre-release of a fixed version is still
affected; one of an introduced version is not), `1.0.post1 > 1.0`.

Local versions (`2.5.1+cu124`) are matched by their public version. Advisory databases list
public versions only (PyPI cannot host local versions), and a local label marks a build of the
same release (PyTorch's CUDA wheels of 2.5.1 are 2.5.1's source). Compared as-is, PEP 440 sorts
`2.5.1+cu124` after `2.5.1`, so `last_affected: 2.5.1` would call the CUDA build safe and an
explicit `versions: [2.5.1]` would miss it; the public version gets both right.

A range with a version that is not PEP 440 (a few old records use dates or `0.4m1`) cannot be
ordered and is left out with a reason; the explicit list still applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from lockd.advisories.model import AffectedPackage, AffectedRange

__all__ = ["AffectedVersions", "public_version"]

# At one version, `introduced` is applied before the events that end an interval, so
# `introduced: X, fixed: X` is empty and `introduced: X, last_affected: X` holds just X.
_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2}
_ZERO = Version("0")


def public_version(version: Version) -> Version:
    """The version without its local label: what advisory data is written against."""
    return version if version.local is None else Version(version.public)


@dataclass(frozen=True, slots=True)
class _Range:
    events: tuple[tuple[str, Version | None], ...]  # sorted; None is introduced "0"
    limits: tuple[Version | None, ...]  # None is `limit: "*"`

    def covers(self, version: Version) -> bool:
        if self.limits and not any(limit is None or version < limit for limit in self.limits):
            return False
        affected = False
        for kind, at in self.events:
            if kind == "introduced":
                if at is None or at <= version:
                    affected = True
            elif at is not None and (at <= version if kind == "fixed" else at < version):
                affected = False
        return affected


def _event_order(event: tuple[str, Version | None]) -> tuple[bool, Version, int]:
    kind, at = event
    return (at is not None, _ZERO if at is None else at, _ORDER[kind])


def _compile(affected_range: AffectedRange) -> _Range:
    """Raises InvalidVersion for an event version PEP 440 cannot order."""
    events: list[tuple[str, Version | None]] = []
    limits: list[Version | None] = []
    for event in affected_range.events:
        if event.kind == "limit":
            limits.append(None if event.version == "*" else Version(event.version))
        elif event.kind == "introduced" and event.version == "0":
            events.append((event.kind, None))
        else:
            events.append((event.kind, Version(event.version)))
    events.sort(key=_event_order)
    return _Range(events=tuple(events), limits=tuple(limits))


class AffectedVersions:
    """One affected entry with its versions parsed once, for matching many pins against it.

    Cost: building parses the range events; the explicit list (PyPA records list up to a few
    hundred versions) is parsed on the first `covers` that the ranges do not answer. `covers` is
    then O(events) plus one set lookup. Shared between threads: a race parses the list twice.
    """

    __slots__ = ("_ranges", "_versions", "entry", "problems")

    def __init__(self, entry: AffectedPackage) -> None:
        self.entry = entry
        ranges: list[_Range] = []
        problems: list[str] = []
        for affected_range in entry.ranges:
            try:
                ranges.append(_compile(affected_range))
            except InvalidVersion as exc:
                problems.append(f"{entry.name}: a range is left out ({exc}: not PEP 440)")
        self._ranges = tuple(ranges)
        self._versions: frozenset[Version] | None = None
        self.problems = tuple(problems)

    def _listed(self) -> frozenset[Version]:
        if self._versions is None:
            versions: set[Version] = set()
            for text in self.entry.versions:
                try:
                    versions.add(public_version(Version(text)))
                except InvalidVersion:
                    continue  # a pinned version is always PEP 440, so it can never equal this one
            self._versions = frozenset(versions)
        return self._versions

    def ranges_cover(self, version: Version) -> bool:
        """Whether a range covers `version`, the explicit list not consulted."""
        public = public_version(version)
        return any(r.covers(public) for r in self._ranges)

    def covers(self, version: Version) -> bool:
        return self.ranges_cover(version) or public_version(version) in self._listed()
