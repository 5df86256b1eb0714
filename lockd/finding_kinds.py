"""The one table of drift finding kinds, and their severity order.

The database CHECKs, the CLI's `--fail-on` default, the alert set, the dashboard's colours and
the settings' `LOCKD_VULNERABLE_AFTER` check all derive from `FINDING_KIND_TABLE`. Kept apart from
`lockd.drift` (which re-exports it) so that settings read the kinds without loading the drift
comparison and, through it, locks and index pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from lockd.errors import InvalidRequest

__all__ = [
    "ALERT_KINDS",
    "FILE_KINDS",
    "FINDING_KINDS",
    "FINDING_KIND_TABLE",
    "SEVERITY",
    "FindingKind",
    "FindingKindInfo",
    "parse_kinds",
    "severity_order",
    "worst",
]

FindingKind = Literal["tampered", "missing", "vulnerable", "unresolvable", "yanked", "outdated", "current"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FindingKindInfo:
    """What lockd does with one kind of finding."""

    name: FindingKind
    alerts: bool  # pages someone (the webhook); `lockd drift check` fails on it by default
    about_a_file: bool  # a finding on one pinned file, listed with the lock's files
    colour: str  # on the dashboard; white text on it passes WCAG AA (≥ 4.5:1)


# The one table of finding kinds: the database CHECKs, the CLI default, the alert set and the
# dashboard derive from it. Most severe first (so darkest first): a changed hash is a
# supply-chain alarm, a vanished file breaks the next build, a known-vulnerable pin ships the
# vulnerability in every image built from it, an unresolvable input cannot be refreshed, a yank
# is a warning, staleness a note. Operators may move `vulnerable` (LOCKD_VULNERABLE_AFTER). `FindingKind` lists the same names in the
# same order, for the type checker (a test holds them equal).
FINDING_KIND_TABLE: tuple[FindingKindInfo, ...] = (
    FindingKindInfo(name="tampered", alerts=True, about_a_file=True, colour="#7f1d1d"),
    FindingKindInfo(name="missing", alerts=True, about_a_file=True, colour="#b91c1c"),
    FindingKindInfo(name="vulnerable", alerts=True, about_a_file=False, colour="#9d174d"),
    FindingKindInfo(name="unresolvable", alerts=True, about_a_file=False, colour="#6d28d9"),
    FindingKindInfo(name="yanked", alerts=False, about_a_file=True, colour="#a16207"),
    FindingKindInfo(name="outdated", alerts=False, about_a_file=False, colour="#1d4ed8"),
    FindingKindInfo(name="current", alerts=False, about_a_file=False, colour="#15803d"),
)
FINDING_KINDS: tuple[FindingKind, ...] = tuple(kind.name for kind in FINDING_KIND_TABLE)
SEVERITY: Mapping[FindingKind, int] = {kind: rank for rank, kind in enumerate(reversed(FINDING_KINDS))}
ALERT_KINDS: frozenset[FindingKind] = frozenset(kind.name for kind in FINDING_KIND_TABLE if kind.alerts)
FILE_KINDS: frozenset[FindingKind] = frozenset(kind.name for kind in FINDING_KIND_TABLE if kind.about_a_file)


def severity_order(*, vulnerable_after: FindingKind | None = "missing") -> tuple[FindingKind, ...]:
    """The kinds most severe first, `vulnerable` just below `vulnerable_after` (None: above all)."""
    if vulnerable_after in ("vulnerable", "current"):
        raise ValueError(f"`vulnerable` cannot rank after {vulnerable_after!r}")
    order: list[FindingKind] = [kind for kind in FINDING_KINDS if kind != "vulnerable"]
    order.insert(0 if vulnerable_after is None else order.index(vulnerable_after) + 1, "vulnerable")
    return tuple(order)


def worst(kinds: Iterable[FindingKind], order: Sequence[FindingKind] = FINDING_KINDS) -> FindingKind:
    """The most severe kind in `order` (most severe first), `current` for none."""
    rank = {kind: position for position, kind in enumerate(order)}
    result: FindingKind = "current"
    for kind in kinds:
        if rank[kind] < rank[result]:
            result = kind
    return result


def parse_kinds(text: str) -> frozenset[FindingKind]:
    """`tampered,missing` → the set of kinds; an unknown name is an `InvalidRequest`."""
    kinds: set[FindingKind] = set()
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in FINDING_KINDS:
            raise InvalidRequest(
                f"unknown finding kind {name!r}",
                hint="use any of: " + ", ".join(FINDING_KINDS),
                context={"value": name},
            )
        kinds.add(name)
    return frozenset(kinds)
