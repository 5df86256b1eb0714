"""Pydantic models of the names API: names, their history, proposals with diffs, per-lock status.

Pydantic lives only at the HTTP edge: each model is made from a service-layer value
(`lockd.names`, `lockd.proposals`) by its `of`, with the links a client follows next.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lockd.http.drift_routes import FindingOut
from lockd.http.files import file_links
from lockd.lock_diff import PackageChange
from lockd.name_views import DriftCheck, LockStatus, NameEvent, NameView, Provenance
from lockd.proposals import ProposalView

__all__ = [
    "ChangeOut",
    "DriftCheckOut",
    "NameEventOut",
    "NameHistory",
    "NameList",
    "NameOut",
    "PolicyBody",
    "ProposalList",
    "ProposalOut",
    "ProvenanceOut",
    "StatusOut",
    "name_links",
]


def name_links(name: str, lock_digest: str) -> dict[str, str]:
    base = f"/v1/names/{name}"
    return {
        "self": base,
        "history": f"{base}/history",
        "status": f"{base}/status",
        "proposals": f"{base}/proposals",
        "refresh": f"{base}/refresh",
        "dashboard": f"/dashboard/names/{name}",
        **{f"file:{file}": link for file, link in file_links(lock_digest).items()},
    }


class ProvenanceOut(BaseModel):
    name: str
    preferred_lock_digest: str | None
    preferences: dict[str, str]
    upgrade: str | list[str]

    @classmethod
    def of(cls, value: Provenance) -> ProvenanceOut:
        return cls(
            name=value.name,
            preferred_lock_digest=value.preferred_lock_digest,
            preferences=dict(value.preferences),
            upgrade=value.upgrade,
        )


class NameOut(BaseModel):
    name: str
    input_digest: str
    status: str
    auto_promote: str | None = Field(description="this name's policy; null: the server's LOCKD_AUTO_PROMOTE")
    revision: int
    lock_digest: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime
    provenance: ProvenanceOut | None = None
    links: dict[str, str]

    @classmethod
    def of(cls, view: NameView, provenance: Provenance | None = None) -> NameOut:
        return cls(
            name=view.name,
            input_digest=view.input_digest,
            status=view.status,
            auto_promote=view.auto_promote,
            revision=view.revision.n,
            lock_digest=view.revision.lock_digest,
            created_at=view.created_at,
            updated_at=view.updated_at,
            last_used_at=view.last_used_at,
            provenance=None if provenance is None else ProvenanceOut.of(provenance),
            links=name_links(view.name, view.revision.lock_digest),
        )


class NameList(BaseModel):
    items: list[NameOut]


class NameEventOut(BaseModel):
    seq: int
    action: str
    input_digest: str
    revision: int | None
    lock_digest: str | None
    proposal_id: int | None
    actor: str | None
    at: datetime

    @classmethod
    def of(cls, event: NameEvent) -> NameEventOut:
        return cls(
            seq=event.seq,
            action=event.action,
            input_digest=event.input_digest,
            revision=event.revision,
            lock_digest=event.lock_digest,
            proposal_id=event.proposal_id,
            actor=event.actor,
            at=event.at,
        )


class NameHistory(BaseModel):
    name: str
    events: list[NameEventOut]


class ChangeOut(BaseModel):
    name: str
    change: str = Field(description="upgrade, downgrade, added, removed or hashes")
    old_version: str | None
    new_version: str | None
    reasons: list[str] = Field(
        description="yanked, missing, tampered, newer, older, required, unrequired, files"
    )

    @classmethod
    def of(cls, change: PackageChange) -> ChangeOut:
        return cls(**change.to_json())


class ProposalOut(BaseModel):
    id: int
    input_digest: str
    base_revision: int
    base_lock_digest: str
    lock_digest: str
    source: str
    status: str
    changes: list[ChangeOut]
    created_at: datetime
    created_by: str | None
    decided_at: datetime | None
    decided_by: str | None
    revision: int | None = Field(description="the revision its promotion made")
    promote: str = Field(description="the command that promotes it")
    links: dict[str, str]

    @classmethod
    def of(cls, proposal: ProposalView, *, base: str, name: str | None) -> ProposalOut:
        owner = f"/v1/names/{name}" if name is not None else f"/v1/locks/{proposal.input_digest}"
        promote_path = f"{owner}/proposals/{proposal.id}/promote"
        command = (
            f'curl -fsS -X POST -H "Authorization: Bearer $LOCKD_TOKEN" {base.rstrip("/")}{promote_path}'
        )
        return cls(
            id=proposal.id,
            input_digest=proposal.input_digest,
            base_revision=proposal.base_revision,
            base_lock_digest=proposal.base_lock_digest,
            lock_digest=proposal.lock_digest,
            source=proposal.source,
            status=proposal.status,
            changes=[ChangeOut.of(change) for change in proposal.diff.changes],
            created_at=proposal.created_at,
            created_by=proposal.created_by,
            decided_at=proposal.decided_at,
            decided_by=proposal.decided_by,
            revision=proposal.revision,
            promote=command,
            links={
                "self": f"{owner}/proposals/{proposal.id}",
                "promote": promote_path,
                "dashboard": f"/dashboard/proposals/{proposal.id}",
                **{f"file:{file}": link for file, link in file_links(proposal.lock_digest).items()},
            },
        )


class ProposalList(BaseModel):
    items: list[ProposalOut]


class DriftCheckOut(BaseModel):
    run_id: int
    checked_at: datetime
    status: str
    findings: list[FindingOut]

    @classmethod
    def of(cls, check: DriftCheck) -> DriftCheckOut:
        return cls(
            run_id=check.run_id,
            checked_at=check.checked_at,
            status=check.status,
            findings=[FindingOut.of(finding) for finding in check.findings],
        )


class StatusOut(BaseModel):
    """What a CI gate reads: the current revision, its latest drift verdict, the open proposal."""

    name: str | None
    input_digest: str
    revision: int
    lock_digest: str
    retired: bool
    drift: DriftCheckOut | None = Field(description="null: no complete drift run has checked this revision")
    proposal: ProposalOut | None

    @classmethod
    def of(cls, status: LockStatus, *, base: str) -> StatusOut:
        proposal = status.proposal
        return cls(
            name=status.name,
            input_digest=status.input_digest,
            revision=status.revision.n,
            lock_digest=status.revision.lock_digest,
            retired=status.retired,
            drift=None if status.drift is None else DriftCheckOut.of(status.drift),
            proposal=None if proposal is None else ProposalOut.of(proposal, base=base, name=status.name),
        )


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_promote: Literal["never", "patch", "minor", "always"] | None = Field(
        description="promote this name's proposals without a person; null: the server's policy"
    )
