"""Several targets in one request: one lock each, the same versions wherever the targets allow.

The first target is locked exactly as a request for it alone would be (same input, same
digest, same stored lock). Every other target is locked with the first lock's pins as the
resolver's preferences: a shared package keeps the first target's version unless that version
does not install there or the target's other requirements rule it out. The preferences change
what such a target may resolve to, so they are part of its input and its digest: the lock is
stored and served like any other (`/v1/locks/{input_digest}`, its files, refresh, drift), and
a request for that target alone is a different input with a lock of its own. The answer lists
each target's lock and every package whose version differs between the targets, with why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.errors import InvalidRequest
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.resolver import why_not_preferred
from lockd.service import LockResult, Service

__all__ = ["MAX_TARGETS", "Bundle", "BundleMember", "VersionDifference", "lock_bundle"]

MAX_TARGETS = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleMember:
    """One target's lock in a bundle: its request (with any preferences) and its stored result."""

    request: LockRequest
    result: LockResult
    lock: Lock


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionDifference:
    """A package the targets do not pin alike: each target's version (None: not in its lock)."""

    name: NormalizedName
    versions: tuple[tuple[str, str | None], ...]  # (target, version), in request order
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    members: tuple[BundleMember, ...]
    differences: tuple[VersionDifference, ...]

    @property
    def created(self) -> bool:
        """Whether this call resolved at least one of the locks."""
        return any(member.result.created for member in self.members)


def _stored_lock(service: Service, result: LockResult) -> Lock:
    return Lock.from_json(service.lock_file(result.lock_digest, "json").content)


def lock_bundle(service: Service, requests: Sequence[LockRequest]) -> Bundle:
    """Lock each request's target, the first one's pins preferred by the others."""
    if not 1 <= len(requests) <= MAX_TARGETS:
        raise InvalidRequest(
            f"a request locks 1 to {MAX_TARGETS} targets, not {len(requests)}",
            context={"field": "targets", "limit": MAX_TARGETS},
        )
    labels = [request.target.describe() for request in requests]
    if len(set(labels)) != len(labels):
        raise InvalidRequest(
            "the same target is asked for twice", context={"field": "targets", "targets": labels}
        )
    first = service.lock(requests[0])
    first_lock = _stored_lock(service, first)
    members = [BundleMember(request=requests[0], result=first, lock=first_lock)]
    preferences = tuple(first_lock.pins.items())
    reasons: dict[NormalizedName, dict[str, str]] = {}
    for request in requests[1:]:
        preferring = replace(request, preferences=preferences)
        result = service.lock(preferring)
        lock = _stored_lock(service, result)
        members.append(BundleMember(request=preferring, result=result, lock=lock))
        for name, reason in why_not_preferred(preferring, lock, service.index).items():
            reasons.setdefault(name, {})[preferring.target.describe()] = reason
    return Bundle(members=tuple(members), differences=_differences(members, reasons))


def _differences(
    members: Sequence[BundleMember], reasons: dict[NormalizedName, dict[str, str]]
) -> tuple[VersionDifference, ...]:
    pins = [member.lock.pins for member in members]
    labels = [member.request.target.describe() for member in members]
    names = sorted({name for found in pins for name in found})
    differences = []
    for name in names:
        versions: list[Version | None] = [found.get(name) for found in pins]
        public = {None if v is None else v.public for v in versions}
        if len(public) == 1:
            continue  # the same version everywhere (local labels such as +cu124 differ by design)
        differences.append(
            VersionDifference(
                name=name,
                versions=tuple(
                    (label, None if v is None else str(v)) for label, v in zip(labels, versions, strict=True)
                ),
                reason=_reason(name, labels, versions, reasons.get(name, {})),
            )
        )
    return tuple(differences)


def _reason(
    name: NormalizedName, labels: list[str], versions: list[Version | None], why: dict[str, str]
) -> str:
    missing = [label for label, version in zip(labels, versions, strict=True) if version is None]
    parts = []
    if missing:
        parts.append(f"not needed on {', '.join(missing)} (no requirement or dependency asks for it there)")
    parts.extend(f"{label}: {text}" for label, text in why.items())
    if not parts:
        parts.append(f"{name} was not in the first target's lock, so each target chose its newest")
    return "; ".join(parts)
