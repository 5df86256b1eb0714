"""What changed between two locks of one input, why, and whether an operator's policy promotes it.

A proposal (a refresh, or the fresh resolution a drift run found) is shown to a reviewer as
a `LockDiff`: one `PackageChange` per package whose pin or files differ (upgrade, downgrade,
added, removed, hashes), each with the reasons that explain it. Reasons come from the drift
findings on the old lock (`yanked`, `missing`, `tampered`) and from the change itself
(`newer`, `older`, `required`, `unrequired`, `files`).

`AUTO_PROMOTE` is the table of promotion policies an operator can set, globally
(`LOCKD_AUTO_PROMOTE`) or per name: `never` (every change waits for a person), `patch` (promote
when every change is an upgrade within one major.minor series), `minor` (within one major
series), `always`. No policy promotes a change the `tampered` finding explains: a file whose
bytes changed under its name waits for a person. Pure values and functions, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.drift import Finding
from lockd.lock import Lock, LockedPackage

__all__ = [
    "AUTO_PROMOTE",
    "CHANGES",
    "REASONS",
    "AutoPromote",
    "Change",
    "LockDiff",
    "PackageChange",
    "Reason",
    "as_policy",
    "diff_locks",
    "policy_promotes",
]

Change = Literal["upgrade", "downgrade", "added", "removed", "hashes"]
Reason = Literal["yanked", "missing", "tampered", "newer", "older", "required", "unrequired", "files"]
AutoPromote = Literal["never", "patch", "minor", "always"]
CHANGES: tuple[Change, ...] = get_args(Change)
REASONS: tuple[Reason, ...] = get_args(Reason)
AUTO_PROMOTE: tuple[AutoPromote, ...] = get_args(AutoPromote)
_FILE_REASONS: tuple[Reason, ...] = ("tampered", "missing", "yanked")


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageChange:
    """One package whose pin or files differ, and why."""

    name: NormalizedName
    change: Change
    old_version: Version | None
    new_version: Version | None
    reasons: tuple[Reason, ...]

    def describe(self) -> str:
        why = ", ".join(self.reasons)
        if self.change == "added":
            return f"+ {self.name}=={self.new_version} ({why})"
        if self.change == "removed":
            return f"- {self.name}=={self.old_version} ({why})"
        if self.change == "hashes":
            return f"~ {self.name}=={self.new_version}: other files ({why})"
        return f"{self.name} {self.old_version} → {self.new_version} ({why})"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change,
            "old_version": None if self.old_version is None else str(self.old_version),
            "new_version": None if self.new_version is None else str(self.new_version),
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PackageChange:
        change: Change = data["change"]
        reasons: tuple[Reason, ...] = tuple(data["reasons"])
        old, new = data.get("old_version"), data.get("new_version")
        return cls(
            name=canonicalize_name(data["name"]),
            change=change,
            old_version=None if old is None else Version(old),
            new_version=None if new is None else Version(new),
            reasons=reasons,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LockDiff:
    """Every package change from `old_lock_digest` to `new_lock_digest`, sorted by name."""

    old_lock_digest: str
    new_lock_digest: str
    changes: tuple[PackageChange, ...]

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[Change, int]:
        found: dict[Change, int] = dict.fromkeys(CHANGES, 0)
        for change in self.changes:
            found[change.change] += 1
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "old_lock_digest": self.old_lock_digest,
            "new_lock_digest": self.new_lock_digest,
            "changes": [change.to_json() for change in self.changes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> LockDiff:
        if isinstance(data, str):
            data = json.loads(data)
        assert isinstance(data, Mapping)
        return cls(
            old_lock_digest=data["old_lock_digest"],
            new_lock_digest=data["new_lock_digest"],
            changes=tuple(PackageChange.from_json(item) for item in data["changes"]),
        )


def _file_reasons(findings: Iterable[Finding]) -> dict[NormalizedName, list[Reason]]:
    """For each package, the file findings on it, most severe first."""
    found: dict[NormalizedName, list[Reason]] = {}
    for finding in findings:
        if finding.package is None or finding.kind not in _FILE_REASONS:
            continue
        kind: Reason = finding.kind
        reasons = found.setdefault(finding.package, [])
        if kind not in reasons:
            reasons.append(kind)
    for reasons in found.values():
        reasons.sort(key=_FILE_REASONS.index)
    return found


def _hashes(package: LockedPackage) -> frozenset[str]:
    return frozenset(file.sha256 for file in package.files)


def _change(
    name: NormalizedName, old: LockedPackage | None, new: LockedPackage | None, flagged: list[Reason]
) -> PackageChange | None:
    change: Change
    own: Reason
    reasons: list[Reason] = list(flagged)
    if old is None:
        assert new is not None
        change, own = "added", "required"
    elif new is None:
        change, own = "removed", "unrequired"
    elif new.version > old.version:
        change, own = "upgrade", "newer"
    elif new.version < old.version:
        change, own = "downgrade", "older"
    elif _hashes(old) != _hashes(new):
        change, own = "hashes", "files"
    else:
        return None
    if own not in reasons:
        reasons.append(own)
    return PackageChange(
        name=name,
        change=change,
        old_version=None if old is None else old.version,
        new_version=None if new is None else new.version,
        reasons=tuple(reasons),
    )


def diff_locks(old: Lock, new: Lock, findings: Iterable[Finding] = ()) -> LockDiff:
    """What moves from `old` to `new`; `findings` (drift's, on `old`) say why a pin had to move."""
    before = {package.name: package for package in old.packages}
    after = {package.name: package for package in new.packages}
    flagged = _file_reasons(findings)
    changes = []
    for name in sorted(set(before) | set(after)):
        change = _change(name, before.get(name), after.get(name), flagged.get(name, []))
        if change is not None:
            changes.append(change)
    return LockDiff(old_lock_digest=old.digest, new_lock_digest=new.digest, changes=tuple(changes))


def as_policy(text: str | None) -> AutoPromote | None:
    """A stored or configured policy name as an `AutoPromote`; None for none or an unknown name."""
    for policy in AUTO_PROMOTE:
        if policy == text:
            return policy
    return None


def _within(old: Version, new: Version, parts: int) -> bool:
    return (*old.release, 0, 0)[:parts] == (*new.release, 0, 0)[:parts] and old.epoch == new.epoch


def policy_promotes(policy: AutoPromote, diff: LockDiff) -> bool:
    """Whether `policy` promotes `diff` without a person: `patch` and `minor` only take upgrades
    (never an added, removed or re-hashed package, never a downgrade) inside one series, and no
    policy takes a change explained by tampering."""
    if policy == "never" or diff.empty:
        return False
    if any("tampered" in change.reasons for change in diff.changes):
        return False  # a file whose bytes changed under its name is for a person to judge, always
    if policy == "always":
        return True
    parts = 2 if policy == "patch" else 1
    for change in diff.changes:
        if change.change != "upgrade" or change.old_version is None or change.new_version is None:
            return False
        if not _within(change.old_version, change.new_version, parts):
            return False
    return True
