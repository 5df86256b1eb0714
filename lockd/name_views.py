"""What the API, the dashboard and CI see of named locks, converted from store rows.

The values here are the service layer's answers about names (`lockd.names` changes them): a
name and the revision it serves, its history, a lock's provenance, and `LockStatus`, the
per-lock gate: the current revision, the latest complete drift verdict on that very revision
(an older revision's verdict says nothing about what is served now), and the open proposal.
`overview` is the dashboard's list of every active name, checked or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from lockd.drift import Finding, FindingKind
from lockd.errors import NotFound
from lockd.lock_diff import AutoPromote, as_policy
from lockd.proposals import ProposalView
from lockd.store import RevisionRecord, queries, read
from lockd.store import drift as drift_rows
from lockd.store import names as rows
from lockd.store import proposals as proposal_rows
from lockd.store.names import NameEventRecord, NameRecord
from lockd.stored import Revision, StoredInput

__all__ = [
    "DriftCheck",
    "LockStatus",
    "NameEvent",
    "NameRow",
    "NameView",
    "Provenance",
    "current_revision",
    "get_name",
    "get_proposal",
    "input_proposals",
    "list_names",
    "lock_provenance",
    "lock_status",
    "name_history",
    "overview",
    "unknown_name",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NameView:
    name: str
    input_digest: str
    status: str  # active, archived or retired
    auto_promote: AutoPromote | None  # None: the operator's LOCKD_AUTO_PROMOTE
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime
    revision: Revision  # what the name serves: its input's current revision

    @classmethod
    def of(cls, record: NameRecord, revision: Revision) -> NameView:
        return cls(
            name=record.name,
            input_digest=record.input_digest,
            status=record.status,
            auto_promote=as_policy(record.auto_promote),
            created_at=record.created_at,
            updated_at=record.updated_at,
            last_used_at=record.last_used_at,
            revision=revision,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NameEvent:
    """One entry of a name's history: what it pointed at from then on, and who did it."""

    seq: int
    action: str  # created, moved, promoted, archived, retired, restored
    input_digest: str
    revision: int | None
    lock_digest: str | None
    proposal_id: int | None
    actor: str | None  # a token's name, `policy:<policy>`, or None for lockd itself
    at: datetime

    @classmethod
    def of(cls, record: NameEventRecord) -> NameEvent:
        return cls(
            seq=record.seq,
            action=record.action,
            input_digest=record.input_digest,
            revision=record.revision,
            lock_digest=record.lock_digest,
            proposal_id=record.proposal_id,
            actor=record.actor,
            at=record.at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """How a lock resolved under a name was made: the pins it preferred and what was upgraded."""

    name: str
    preferred_lock_digest: str | None
    preferences: Mapping[str, str]
    upgrade: str | list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftCheck:
    """The latest complete drift verdict on the lock an input serves now."""

    run_id: int
    checked_at: datetime
    status: FindingKind
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LockStatus:
    """What CI asks before it builds: the current revision, its drift verdict, the open proposal."""

    name: str | None
    input_digest: str
    revision: Revision
    retired: bool
    drift: DriftCheck | None  # None: no complete drift run has checked this revision yet
    proposal: ProposalView | None


def unknown_name(name: str) -> NotFound:
    return NotFound(f"no lock named {name!r}", hint="GET /v1/names lists them", context={"name": name})


def current_revision(conn: Connection, input_digest: str) -> RevisionRecord:
    found = queries.current_revision(conn, input_digest)
    assert found is not None  # an input is stored with its first revision
    return found


def get_name(engine: Engine, name: str) -> NameView:
    def look(conn: Connection) -> NameView:
        record = rows.get_name(conn, name)
        if record is None:
            raise unknown_name(name)
        return NameView.of(record, Revision.of(current_revision(conn, record.input_digest)))

    return read(engine, look)


def list_names(engine: Engine, *, statuses: tuple[str, ...] | None = ("active",)) -> list[NameView]:
    def look(conn: Connection) -> list[NameView]:
        found = rows.list_names(conn, statuses=statuses)
        return [
            NameView.of(record, Revision.of(current_revision(conn, record.input_digest))) for record in found
        ]

    return read(engine, look)


def name_history(engine: Engine, name: str) -> list[NameEvent]:
    def look(conn: Connection) -> list[NameEvent]:
        if rows.get_name(conn, name) is None:
            raise unknown_name(name)
        return [NameEvent.of(record) for record in rows.list_events(conn, name)]

    return read(engine, look)


def input_proposals(engine: Engine, input_digest: str) -> list[ProposalView]:
    """An input's proposals, newest first."""
    found = read(engine, lambda conn: proposal_rows.list_proposals(conn, input_digest))
    return [ProposalView.of(record) for record in found]


def get_proposal(engine: Engine, proposal_id: int, *, input_digest: str | None = None) -> ProposalView:
    found = read(engine, lambda conn: proposal_rows.get_proposal(conn, proposal_id))
    if found is None or (input_digest is not None and found.input_digest != input_digest):
        raise NotFound(f"no proposal {proposal_id} here", context={"proposal": proposal_id})
    return ProposalView.of(found)


def lock_provenance(engine: Engine, lock_digest: str) -> Provenance | None:
    found = read(engine, lambda conn: rows.get_provenance(conn, lock_digest))
    if found is None:
        return None
    return Provenance(
        name=found.name,
        preferred_lock_digest=found.preferred_lock_digest,
        preferences=found.preferences,
        upgrade=found.upgrade,
    )


def _drift_check(conn: Connection, current: RevisionRecord) -> DriftCheck | None:
    """The latest complete verdict on the lock `current` serves, if a run checked that lock."""
    digest = current.input_digest
    result = drift_rows.latest_result(conn, digest)
    if result is None or result.lock_digest != current.lock_digest:
        return None
    findings = tuple(drift_rows.result_findings(conn, result.run_id, digest))
    return DriftCheck(
        run_id=result.run_id, checked_at=result.checked_at, status=result.status, findings=findings
    )


def _status(conn: Connection, name: str | None, digest: str) -> LockStatus:
    current = queries.current_revision(conn, digest)
    if current is None:
        raise NotFound(f"no lock for input {digest}", context={"input_digest": digest})
    proposal = proposal_rows.open_proposal(conn, digest)
    return LockStatus(
        name=name,
        input_digest=digest,
        revision=Revision.of(current),
        retired=rows.is_retired(conn, digest),
        drift=_drift_check(conn, current),
        proposal=None if proposal is None else ProposalView.of(proposal),
    )


def lock_status(engine: Engine, *, name: str | None = None, input_digest: str | None = None) -> LockStatus:
    """The gate's answer for a name, or for an input digest."""

    def look(conn: Connection) -> LockStatus:
        digest = input_digest
        if name is not None:
            record = rows.get_name(conn, name)
            if record is None:
                raise unknown_name(name)
            digest = record.input_digest
        assert digest is not None
        return _status(conn, name, digest)

    return read(engine, look)


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRow:
    """One active name on the dashboard: what it serves, for which target, and how that lock is."""

    name: str
    stored: StoredInput
    status: LockStatus

    @property
    def reason(self) -> str:
        """Why the lock needs a look, in a few words: its worst findings, or why it has none."""
        if self.status.drift is None:
            return "not checked yet"
        messages = [f.message for f in self.status.drift.findings if f.kind == self.status.drift.status]
        return "; ".join(messages[:2]) + (f" (+{len(messages) - 2} more)" if len(messages) > 2 else "")


def overview(engine: Engine) -> list[NameRow]:
    """Every active name with its status, in name order (not yet checked ones included)."""

    def look(conn: Connection) -> list[NameRow]:
        found = []
        for record in rows.list_names(conn, statuses=("active",)):
            stored = queries.get_input(conn, record.input_digest)
            assert stored is not None
            found.append(
                NameRow(
                    name=record.name,
                    stored=StoredInput.of(stored),
                    status=_status(conn, record.name, record.input_digest),
                )
            )
        return found

    return read(engine, look)
