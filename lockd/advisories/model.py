"""An OSV advisory as an immutable value, read from OSV-schema data and kept as lockd's own JSON.

OSV schema: https://ossf.github.io/osv-schema/. Only what lockd uses is kept: the id and its
aliases (CVE, GHSA), a summary, the details, the severity, the references, the timestamps, and
for each affected PyPI package its name (PEP 503 normalised), its ECOSYSTEM ranges and its
explicit `versions` list. GIT ranges name commits, which a pinned version cannot be compared
with, and other ecosystems are not PyPI's, so both are dropped at intake. Versions stay the
strings the data gives (some are not PEP 440 at all); `ranges.AffectedVersions` parses them once
for matching. Timestamps stay strings too: they are shown, never computed with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from packaging.utils import NormalizedName, canonicalize_name

from lockd.advisories.severity import Severity, severity_of
from lockd.errors import LockdError

__all__ = [
    "OSV_VULNERABILITY_URL",
    "Advisory",
    "AffectedPackage",
    "AffectedRange",
    "EventKind",
    "InvalidAdvisory",
    "RangeEvent",
    "Reference",
    "parse_osv",
]

EventKind = Literal["introduced", "fixed", "last_affected", "limit"]
_EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
OSV_VULNERABILITY_URL = "https://osv.dev/vulnerability/"
_SUMMARY_CHARS = 200


class InvalidAdvisory(LockdError):
    """Advisory data that is not OSV: a directory skips the file, an API answer is unusable."""

    code = "invalid-advisory"
    status = 502
    title = "Invalid advisory data"


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeEvent:
    kind: EventKind
    version: str  # as the data gives it; "0" for introduced means "every version"

    def to_json(self) -> dict[str, str]:
        return {self.kind: self.version}


@dataclass(frozen=True, slots=True, kw_only=True)
class AffectedRange:
    """One ECOSYSTEM range: events in the data's order (evaluation sorts them by version)."""

    events: tuple[RangeEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {"events": [event.to_json() for event in self.events]}


@dataclass(frozen=True, slots=True, kw_only=True)
class AffectedPackage:
    name: NormalizedName
    ranges: tuple[AffectedRange, ...]
    versions: tuple[str, ...]

    @property
    def fixed(self) -> tuple[str, ...]:
        return tuple(e.version for r in self.ranges for e in r.events if e.kind == "fixed")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ranges": [r.to_json() for r in self.ranges],
            "versions": list(self.versions),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    type: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "url": self.url}


@dataclass(frozen=True, slots=True, kw_only=True)
class Advisory:
    """One advisory about one or more PyPI packages."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    severity: Severity | None
    affected: tuple[AffectedPackage, ...]
    references: tuple[Reference, ...]
    published: str | None
    modified: str | None
    withdrawn: str | None  # set: the advisory was retracted and affects nothing

    @property
    def url(self) -> str:
        """Where a person reads it: the advisory's own page on osv.dev, which mirrors every database."""
        return OSV_VULNERABILITY_URL + self.id

    def affecting(self, name: NormalizedName) -> tuple[AffectedPackage, ...]:
        return tuple(a for a in self.affected if a.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "details": self.details,
            "severity": None if self.severity is None else self.severity.to_json(),
            "affected": [a.to_json() for a in self.affected],
            "references": [r.to_json() for r in self.references],
            "published": self.published,
            "modified": self.modified,
            "withdrawn": self.withdrawn,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Advisory:
        severity = data["severity"]
        return cls(
            id=data["id"],
            aliases=tuple(data["aliases"]),
            summary=data["summary"],
            details=data["details"],
            severity=None if severity is None else Severity.from_json(severity),
            affected=tuple(
                AffectedPackage(
                    name=canonicalize_name(a["name"]),
                    ranges=tuple(AffectedRange(events=_events(r["events"])) for r in a["ranges"]),
                    versions=tuple(a["versions"]),
                )
                for a in data["affected"]
            ),
            references=tuple(Reference(type=r["type"], url=r["url"]) for r in data["references"]),
            published=data["published"],
            modified=data["modified"],
            withdrawn=data["withdrawn"],
        )


def _events(raw: object) -> tuple[RangeEvent, ...]:
    events = []
    for item in _list(raw, "events"):
        if not isinstance(item, Mapping) or len(item) != 1:
            raise InvalidAdvisory(f"a range event is not a one-key mapping: {str(item)[:100]}")
        ((kind, version),) = item.items()
        if kind not in _EVENT_KINDS or not isinstance(version, str) or not version:
            raise InvalidAdvisory(f"unknown range event {kind!r}: {str(version)[:100]}")
        events.append(RangeEvent(kind=kind, version=version))
    return tuple(events)


def _list(value: object, field: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidAdvisory(f"`{field}` is not a list")
    return value


def _text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAdvisory(f"`{field}` is not a string")
    return value


def _summary(summary: str | None, details: str) -> str:
    """OSV's `summary` when there is one (PyPA's PYSEC files have none): else the details' first line."""
    if summary and summary.strip():
        return summary.strip()
    first = details.strip().split("\n", 1)[0].strip()
    if len(first) <= _SUMMARY_CHARS:
        return first
    cut = first[:_SUMMARY_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


def _affected(raw: object) -> AffectedPackage | None:
    if not isinstance(raw, Mapping):
        raise InvalidAdvisory("an `affected` entry is not a mapping")
    package = raw.get("package")
    if not isinstance(package, Mapping) or not isinstance(package.get("name"), str):
        raise InvalidAdvisory("an `affected` entry has no package name")
    if str(package.get("ecosystem", "")).lower() != "pypi":
        return None
    ranges = []
    for item in _list(raw.get("ranges"), "ranges"):
        if not isinstance(item, Mapping):
            raise InvalidAdvisory("a range is not a mapping")
        if item.get("type") == "ECOSYSTEM":
            ranges.append(AffectedRange(events=_events(item.get("events"))))
    versions = tuple(str(v) for v in _list(raw.get("versions"), "versions"))
    return AffectedPackage(name=canonicalize_name(package["name"]), ranges=tuple(ranges), versions=versions)


def _severity(data: Mapping[str, Any]) -> Severity | None:
    """Top-level `severity`, then each affected entry's; the rating from `database_specific`."""
    vectors: list[tuple[str, str]] = []
    entries = [data, *(a for a in _list(data.get("affected"), "affected") if isinstance(a, Mapping))]
    database_level = None
    for entry in entries:
        for item in _list(entry.get("severity"), "severity"):
            if isinstance(item, Mapping) and isinstance(item.get("score"), str):
                vectors.append((str(item.get("type")), item["score"]))
        specific = entry.get("database_specific")
        if database_level is None and isinstance(specific, Mapping):
            level = specific.get("severity")
            database_level = level if isinstance(level, str) else None
    return severity_of(vectors, database_level)


def parse_osv(data: object) -> Advisory:
    """An OSV record (parsed JSON or YAML) → `Advisory`; `InvalidAdvisory` says what is wrong."""
    if not isinstance(data, Mapping):
        raise InvalidAdvisory("not an OSV record (the top level is not a mapping)")
    advisory_id = _text(data.get("id"), "id")
    if not advisory_id:
        raise InvalidAdvisory("the record has no `id`")
    details = _text(data.get("details"), "details") or ""
    affected = [_affected(item) for item in _list(data.get("affected"), "affected")]
    references = []
    for item in _list(data.get("references"), "references"):
        if isinstance(item, Mapping) and isinstance(item.get("url"), str):
            references.append(Reference(type=str(item.get("type", "WEB")), url=item["url"]))
    return Advisory(
        id=advisory_id,
        aliases=tuple(str(alias) for alias in _list(data.get("aliases"), "aliases")),
        summary=_summary(_text(data.get("summary"), "summary"), details),
        details=details,
        severity=_severity(data),
        affected=tuple(a for a in affected if a is not None),
        references=tuple(references),
        published=_text(data.get("published"), "published"),
        modified=_text(data.get("modified"), "modified"),
        withdrawn=_text(data.get("withdrawn"), "withdrawn"),
    )
