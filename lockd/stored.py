"""What the service layer returns about stored inputs and locks, converted from store rows.

Store rows never leave the service layer (`lockd.http` may not import `lockd.store`): each read
turns them into these frozen values at the boundary. `LockRequest.from_json` turns a stored
canonical input back into the request that refresh and drift re-resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lockd.resolver import ResolveStats
from lockd.store import InputRecord, LockFileRecord, LockSummary, RevisionRecord

__all__ = ["LockFile", "LockResult", "Revision", "StoredInput", "StoredLock"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """Revision `n` of a stored input: which lock it pins, since when, and why it was made."""

    input_digest: str
    n: int
    lock_digest: str
    created_at: datetime
    reason: str

    @classmethod
    def of(cls, record: RevisionRecord) -> Revision:
        return cls(
            input_digest=record.input_digest,
            n=record.n,
            lock_digest=record.lock_digest,
            created_at=record.created_at,
            reason=record.reason,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LockResult:
    """The current revision of an input, and whether this call created or resolved it."""

    input_digest: str
    revision: Revision
    created: bool
    stats: ResolveStats | None  # set only when this call ran the resolution

    @property
    def lock_digest(self) -> str:
        return self.revision.lock_digest


@dataclass(frozen=True, slots=True, kw_only=True)
class LockFile:
    """One rendered file of a lock, as served: its bytes never change for a lock digest."""

    lock_digest: str
    format: str
    sha256: str
    media_type: str
    content: bytes

    @classmethod
    def of(cls, record: LockFileRecord) -> LockFile:
        return cls(
            lock_digest=record.lock_digest,
            format=record.format,
            sha256=record.sha256,
            media_type=record.media_type,
            content=record.content,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredLock:
    """One stored input with its current revision, for listings."""

    input_digest: str
    platform: str
    python: str
    cuda: str | None
    revision: int
    lock_digest: str
    package_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, summary: LockSummary) -> StoredLock:
        return cls(
            input_digest=summary.input_digest,
            platform=summary.platform,
            python=summary.python,
            cuda=summary.cuda,
            revision=summary.revision,
            lock_digest=summary.lock_digest,
            package_count=summary.package_count,
            created_at=summary.created_at,
            updated_at=summary.updated_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredInput:
    """What a stored input asks for, as its canonical form recorded it."""

    input_digest: str
    platform: str
    python: str
    cuda: str | None
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    target: tuple[tuple[str, str | None], ...] = ()  # the canonical target, levels and driver included

    @classmethod
    def of(cls, record: InputRecord) -> StoredInput:
        canonical = record.canonical
        target = canonical["target"]
        return cls(
            input_digest=record.digest,
            platform=target["platform"],
            python=target["python"],
            cuda=target["cuda"],
            requirements=tuple(canonical["requirements"]),
            constraints=tuple(canonical["constraints"]),
            target=tuple(target.items()),
        )
