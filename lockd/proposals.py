"""Proposals: a re-resolution that changed a lock waits, with its diff, until it is promoted.

What an input digest (and every name pointing at it) serves changes only here: `promote`
appends the proposal's lock as the input's next revision, by a person (a `lock` token) or by
the operator's policy (`lockd.lock_diff.policy_promotes`, LOCKD_AUTO_PROMOTE or the name's
own). A proposal is made against one revision (its base): once the input has moved past it, or
a name it was promoted through has moved to another input, promoting it is `StaleProposal`
(409). A newer proposal for an input supersedes the open one. Everything here runs inside the
caller's write transaction and holds the input's row (`lockd.store.names.lock_input`) first,
so proposals and promotions of one input never interleave and nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from lockd.drift import Finding
from lockd.errors import LockdError, NotFound
from lockd.lock import Lock
from lockd.lock_diff import AUTO_PROMOTE, AutoPromote, LockDiff, as_policy, diff_locks, policy_promotes
from lockd.store import RevisionRecord, queries
from lockd.store import names as name_rows
from lockd.store import proposals as rows
from lockd.store.proposals import ProposalRecord

__all__ = ["Decided", "ProposalView", "StaleProposal", "effective_policy", "promote", "propose"]


class StaleProposal(LockdError):
    """The proposal was made against a revision (or a name's input) that has moved since."""

    code = "stale-proposal"
    status = 409
    title = "The proposal is stale"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalView:
    """One proposal as the API, the dashboard and the webhook show it."""

    id: int
    input_digest: str
    base_revision: int
    base_lock_digest: str
    lock_digest: str
    source: str  # refresh, drift or upgrade
    status: str  # open, promoted or superseded
    diff: LockDiff
    created_at: datetime
    created_by: str | None
    decided_at: datetime | None
    decided_by: str | None  # a token's name, or `policy:<policy>`
    revision: int | None  # the revision its promotion made

    @classmethod
    def of(cls, record: ProposalRecord) -> ProposalView:
        return cls(
            id=record.id,
            input_digest=record.input_digest,
            base_revision=record.base_revision,
            base_lock_digest=record.base_lock_digest,
            lock_digest=record.lock_digest,
            source=record.source,
            status=record.status,
            diff=LockDiff.from_json(record.diff),
            created_at=record.created_at,
            created_by=record.created_by,
            decided_at=record.decided_at,
            decided_by=record.decided_by,
            revision=record.revision,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input_digest": self.input_digest,
            "base_revision": self.base_revision,
            "base_lock_digest": self.base_lock_digest,
            "lock_digest": self.lock_digest,
            "source": self.source,
            "status": self.status,
            "changes": [change.to_json() for change in self.diff.changes],
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "decided_by": self.decided_by,
            "revision": self.revision,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decided:
    """A proposal, and the revision it became if the policy promoted it at once."""

    proposal: ProposalView
    revision: RevisionRecord | None


def effective_policy(conn: Connection, input_digest: str, default: AutoPromote) -> AutoPromote:
    """The strictest policy of the live names pointing at the input (each its own or `default`)."""
    live = name_rows.live_names_for_input(conn, input_digest)
    policies = [as_policy(record.auto_promote) or default for record in live]
    return min(policies or [default], key=AUTO_PROMOTE.index)


def propose(
    conn: Connection,
    *,
    input_digest: str,
    new: Lock,
    findings: Iterable[Finding],
    source: str,
    actor: str | None,
    default_policy: AutoPromote,
    now: datetime,
    base_revision: int | None = None,
) -> Decided | None:
    """Record `new` (stored already) as a proposal against the input's current revision, and
    promote it if the policy says so.

    None when there is nothing to propose: `new` is what the input serves, or the input has
    moved past `base_revision` (the revision a drift run checked) meanwhile. The same lock
    proposed again against the same revision answers the open proposal.
    """
    digest = input_digest
    name_rows.lock_input(conn, digest)
    base = queries.current_revision(conn, digest)
    if base is None or base.lock_digest == new.digest:
        return None
    if base_revision is not None and base.n != base_revision:
        return None
    existing = rows.open_proposal(conn, digest)
    if existing is not None and existing.lock_digest == new.digest and existing.base_revision == base.n:
        return Decided(proposal=ProposalView.of(existing), revision=None)
    old = queries.get_lock_canonical(conn, base.lock_digest)
    assert old is not None  # a revision's lock is written with it
    diff = diff_locks(Lock.from_json(old), new, findings)
    rows.supersede_open(conn, digest, now=now, by=actor)
    proposal_id = rows.put_proposal(
        conn,
        input_digest=digest,
        base_revision=base.n,
        base_lock_digest=base.lock_digest,
        lock_digest=new.digest,
        source=source,
        diff=diff.to_json(),
        created_by=actor,
        now=now,
    )
    policy = effective_policy(conn, digest, default_policy)
    if policy_promotes(policy, diff):
        return promote(conn, proposal_id, actor=f"policy:{policy}", now=now)
    record = rows.get_proposal(conn, proposal_id)
    assert record is not None
    return Decided(proposal=ProposalView.of(record), revision=None)


def promote(
    conn: Connection, proposal_id: int, *, actor: str | None, now: datetime, through_name: str | None = None
) -> Decided:
    """Append the proposal's lock as its input's next revision, and tell each name's history.

    `through_name`: the name the person promoted it by, which must still point at the input.
    """
    found = rows.get_proposal(conn, proposal_id, for_update=True)
    if found is None:
        raise NotFound(f"no proposal {proposal_id}", context={"proposal": proposal_id})
    digest = found.input_digest
    name_rows.lock_input(conn, digest)
    if through_name is not None:
        named = name_rows.get_name(conn, through_name, for_update=True)
        if named is None or named.input_digest != digest:
            raise StaleProposal(
                f"proposal {proposal_id} is for another input than {through_name!r} points at now",
                hint=f"the name moved since; see GET /v1/names/{through_name}/proposals",
                context={"proposal": proposal_id, "name": through_name},
            )
    found = rows.get_proposal(conn, proposal_id)  # read again now that the input is held
    assert found is not None
    current = queries.current_revision(conn, digest)
    assert current is not None  # an input is stored with its first revision
    if found.status != "open" or current.n != found.base_revision:
        why = (
            f"it is {found.status}" if found.status != "open" else f"the lock is at revision {current.n} now"
        )
        raise StaleProposal(
            f"proposal {proposal_id} was made against revision {found.base_revision}; {why}",
            hint="promote the input's open proposal instead, or refresh for a new one",
            context={"proposal": proposal_id, "status": found.status, "current_revision": current.n},
        )
    revision = queries.put_revision(
        conn,
        input_digest=digest,
        n=current.n + 1,
        lock_digest=found.lock_digest,
        reason=found.source,
        now=now,
    )
    rows.decide_proposal(conn, proposal_id, status="promoted", now=now, by=actor, revision=revision.n)
    for record in name_rows.names_for_input(conn, digest):
        name_rows.get_name(conn, record.name, for_update=True)
        name_rows.add_event(
            conn,
            record.name,
            action="promoted",
            input_digest=digest,
            revision=revision.n,
            lock_digest=revision.lock_digest,
            actor=actor,
            now=now,
            proposal_id=proposal_id,
        )
        name_rows.set_name(conn, record.name, updated_at=now)
    promoted = rows.get_proposal(conn, proposal_id)
    assert promoted is not None
    return Decided(proposal=ProposalView.of(promoted), revision=revision)
