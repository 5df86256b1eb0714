"""Named locks: a name points at its current input; moving it keeps every pin the change allows.

`Names.lock(request, name=…)` is `POST /lock?name=…`. An input already locked keeps its
stored lock (same input, same bytes) and the name moves to it. An input never locked is
resolved with the name's current pins as preferences, as pip-compile does with an existing
output file, so only what the change requires moves; `upgrade=all` or `upgrade=a,b` opts
out for all or some packages, and the preferences used are recorded as the lock's provenance.
The new input, its lock, the name's move and the provenance land in one transaction. An
upgrade of an input that is already locked is a refresh that keeps the other pins: a proposal.

The input a name leaves is retired (out of drift, still served by digest) once no active name
points at it. What a name serves changes otherwise only by promoting a proposal
(`lockd.proposals`). Per-lock status for CI is `status`, the history `history`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from sqlalchemy import Connection

from lockd.drift import Finding, FindingKind
from lockd.errors import LockdError, NotFound
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.lock_diff import AutoPromote, as_policy
from lockd.naming import parse_lock_name
from lockd.proposals import ProposalView, promote
from lockd.service import RefreshResult, Service
from lockd.store import RevisionRecord, queries, read, transaction
from lockd.store import drift as drift_rows
from lockd.store import names as rows
from lockd.store import proposals as proposal_rows
from lockd.store.names import NameEventRecord, NameRecord
from lockd.stored import LockResult, Revision

__all__ = [
    "DriftCheck",
    "LockStatus",
    "NameArchived",
    "NameEvent",
    "NameView",
    "NamedLock",
    "Names",
    "Provenance",
    "Upgrade",
    "UpgradeNotInLock",
    "parse_upgrade",
]

Upgrade = Literal["all"] | frozenset[NormalizedName]
# A name's use is recorded at most this often: a CI job fetching by name is a read, not a write.
_USE_RECORDED_EVERY = timedelta(hours=1)


class UpgradeNotInLock(LockdError):
    code = "upgrade-not-in-lock"
    status = 422
    title = "Upgrade names a package the lock does not pin"


class NameArchived(LockdError):
    code = "name-archived"
    status = 409
    title = "The name is archived"


def parse_upgrade(text: str | None) -> Upgrade | None:
    """`all`, or comma-separated project names (normalised); None for nothing to upgrade."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "all":
        return "all"
    return frozenset(canonicalize_name(part.strip()) for part in text.split(",") if part.strip())


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
    upgrade: str | builtins.list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedLock:
    name: str
    result: LockResult
    moved: bool  # the name points at another input (or is new) since this call
    previous_input: str | None
    proposal: ProposalView | None  # an upgrade of an input already locked proposes


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


def _unknown(name: str) -> NotFound:
    return NotFound(f"no lock named {name!r}", hint="GET /v1/names lists them", context={"name": name})


def _revision(conn: Connection, input_digest: str) -> RevisionRecord:
    found = queries.current_revision(conn, input_digest)
    assert found is not None  # an input is stored with its first revision
    return found


class Names:
    """Named locks over one service. Thread-safe."""

    def __init__(self, service: Service) -> None:
        self._service = service

    # -- locking by name -------------------------------------------------------------------

    def lock(
        self, request: LockRequest, *, name: str, upgrade: Upgrade | None = None, actor: str | None = None
    ) -> NamedLock:
        """Lock `request` under `name`, moving the name to it (see the module docstring)."""
        name = parse_lock_name(name)
        digest = request.digest
        named, current, stored = read(self._service.engine, lambda conn: self._look(conn, name, digest))
        if named is not None and named.status == "archived":
            raise NameArchived(
                f"the name {name!r} is archived", hint="an admin can delete it", context={"name": name}
            )
        preferences = _preferences(name, current, upgrade)
        previous = None if named is None else named.input_digest
        if stored is None:
            moved: list[bool] = []

            def on_create(conn: Connection, revision: RevisionRecord) -> None:
                now = datetime.now(UTC)
                rows.put_provenance(
                    conn,
                    lock_digest=revision.lock_digest,
                    name=name,
                    preferred_lock_digest=None if current is None else current.digest,
                    preferences={str(k): str(v) for k, v in (preferences or {}).items()},
                    upgrade="all" if upgrade == "all" else sorted(upgrade or ()),
                    now=now,
                )
                moved.append(self._move(conn, name, revision, actor, now))

            result = self._service.lock(request, preferences=preferences, on_create=on_create)
            if moved:
                return NamedLock(
                    name=name, result=result, moved=moved[0], previous_input=previous, proposal=None
                )
        else:
            result = LockResult(input_digest=digest, revision=Revision.of(stored), created=False, stats=None)
        fresh_use = named is not None and named.input_digest == digest and named.status == "active"
        recent = (
            fresh_use and named is not None and named.last_used_at > datetime.now(UTC) - _USE_RECORDED_EVERY
        )
        did_move = False
        if not recent:
            with transaction(self._service.engine, write=True) as conn:
                did_move = self._move(conn, name, _revision(conn, digest), actor, datetime.now(UTC))
        proposal = None
        if upgrade is not None:
            refreshed = self._service.refresh(digest, preferences=preferences, source="upgrade", actor=actor)
            proposal = refreshed.proposal
            result = LockResult(input_digest=digest, revision=refreshed.revision, created=False, stats=None)
        return NamedLock(name=name, result=result, moved=did_move, previous_input=previous, proposal=proposal)

    @staticmethod
    def _look(
        conn: Connection, name: str, digest: str
    ) -> tuple[NameRecord | None, Lock | None, RevisionRecord | None]:
        named = rows.get_name(conn, name)
        current = None
        if named is not None:
            canonical = queries.get_lock_canonical(conn, _revision(conn, named.input_digest).lock_digest)
            assert canonical is not None
            current = Lock.from_json(canonical)
        return named, current, queries.current_revision(conn, digest)

    @staticmethod
    def _move(
        conn: Connection, name: str, revision: RevisionRecord, actor: str | None, now: datetime
    ) -> bool:
        """Point `name` at the revision's input in `conn`'s transaction; False if it already did."""
        digest = revision.input_digest
        created = rows.put_name(conn, name, digest, now=now)
        named = rows.get_name(conn, name, for_update=True)
        assert named is not None
        if not created and named.input_digest == digest and named.status == "active":
            rows.touch_name(conn, name, now=now, not_since=now - _USE_RECORDED_EVERY)
            return False
        action = "created" if created else ("moved" if named.input_digest != digest else "restored")
        rows.set_name(conn, name, input_digest=digest, status="active", updated_at=now, last_used_at=now)
        rows.add_event(
            conn,
            name,
            action=action,
            input_digest=digest,
            revision=revision.n,
            lock_digest=revision.lock_digest,
            actor=actor,
            now=now,
        )
        rows.restore_input(conn, digest)
        if named.input_digest != digest:
            rows.retire_if_unnamed(conn, named.input_digest, now=now, reason=f"name {name} moved")
        return True

    # -- reads -----------------------------------------------------------------------------

    def get(self, name: str) -> NameView:
        def look(conn: Connection) -> NameView:
            record = rows.get_name(conn, name)
            if record is None:
                raise _unknown(name)
            return NameView.of(record, Revision.of(_revision(conn, record.input_digest)))

        return read(self._service.engine, look)

    def list(self, *, statuses: tuple[str, ...] | None = ("active",)) -> builtins.list[NameView]:
        def look(conn: Connection) -> builtins.list[NameView]:
            found = rows.list_names(conn, statuses=statuses)
            return [
                NameView.of(record, Revision.of(_revision(conn, record.input_digest))) for record in found
            ]

        return read(self._service.engine, look)

    def history(self, name: str) -> builtins.list[NameEvent]:
        def look(conn: Connection) -> builtins.list[NameEvent]:
            if rows.get_name(conn, name) is None:
                raise _unknown(name)
            return [NameEvent.of(record) for record in rows.list_events(conn, name)]

        return read(self._service.engine, look)

    def proposals(self, input_digest: str) -> builtins.list[ProposalView]:
        """An input's proposals, newest first."""
        found = read(self._service.engine, lambda conn: proposal_rows.list_proposals(conn, input_digest))
        return [ProposalView.of(record) for record in found]

    def proposal(self, proposal_id: int, *, input_digest: str | None = None) -> ProposalView:
        found = read(self._service.engine, lambda conn: proposal_rows.get_proposal(conn, proposal_id))
        if found is None or (input_digest is not None and found.input_digest != input_digest):
            raise NotFound(f"no proposal {proposal_id} here", context={"proposal": proposal_id})
        return ProposalView.of(found)

    def provenance(self, lock_digest: str) -> Provenance | None:
        found = read(self._service.engine, lambda conn: rows.get_provenance(conn, lock_digest))
        if found is None:
            return None
        return Provenance(
            name=found.name,
            preferred_lock_digest=found.preferred_lock_digest,
            preferences=found.preferences,
            upgrade=found.upgrade,
        )

    def status(self, *, name: str | None = None, input_digest: str | None = None) -> LockStatus:
        """The gate's answer for a name, or for an input digest."""

        def look(conn: Connection) -> LockStatus:
            digest = input_digest
            if name is not None:
                record = rows.get_name(conn, name)
                if record is None:
                    raise _unknown(name)
                digest = record.input_digest
            assert digest is not None
            current = queries.current_revision(conn, digest)
            if current is None:
                raise NotFound(f"no lock for input {digest}", context={"input_digest": digest})
            result = drift_rows.latest_result(conn, digest)
            drift = None
            if result is not None and result.lock_digest == current.lock_digest:
                findings = tuple(drift_rows.result_findings(conn, result.run_id, digest))
                drift = DriftCheck(
                    run_id=result.run_id,
                    checked_at=result.checked_at,
                    status=result.status,
                    findings=findings,
                )
            proposal = proposal_rows.open_proposal(conn, digest)
            return LockStatus(
                name=name,
                input_digest=digest,
                revision=Revision.of(current),
                retired=rows.is_retired(conn, digest),
                drift=drift,
                proposal=None if proposal is None else ProposalView.of(proposal),
            )

        return read(self._service.engine, look)

    # -- changing what a name serves ---------------------------------------------------------

    def refresh(self, name: str, *, actor: str | None = None) -> RefreshResult:
        """Re-resolve the name's current input against the index now: a proposal if it changed."""
        return self._service.refresh(self.get(name).input_digest, actor=actor)

    def promote(self, proposal_id: int, *, actor: str | None, name: str | None = None) -> ProposalView:
        """Promote a proposal (through `name`, which must still point at its input): 409 if stale."""
        with transaction(self._service.engine, write=True) as conn:
            if name is not None and rows.get_name(conn, name) is None:
                raise _unknown(name)
            decided = promote(conn, proposal_id, actor=actor, now=datetime.now(UTC), through_name=name)
        return decided.proposal

    def archive(self, name: str, *, actor: str | None) -> NameView:
        """Stop the name: it keeps its history and serves its lock, its input leaves drift."""
        self._set_status(name, "archived", actor)
        return self.get(name)

    def delete(self, name: str) -> None:
        """Remove the name and its history; its input retires unless another name points at it."""
        with transaction(self._service.engine, write=True) as conn:
            record = rows.get_name(conn, name, for_update=True)
            if record is None:
                raise _unknown(name)
            rows.delete_name(conn, name)
            rows.retire_if_unnamed(
                conn, record.input_digest, now=datetime.now(UTC), reason=f"name {name} deleted"
            )

    def set_policy(self, name: str, policy: AutoPromote | None) -> NameView:
        with transaction(self._service.engine, write=True) as conn:
            if rows.get_name(conn, name, for_update=True) is None:
                raise _unknown(name)
            rows.set_name(conn, name, auto_promote=policy)
        return self.get(name)

    def _set_status(self, name: str, status: str, actor: str | None) -> None:
        with transaction(self._service.engine, write=True) as conn:
            record = rows.get_name(conn, name, for_update=True)
            if record is None:
                raise _unknown(name)
            if record.status == status:
                return
            now = datetime.now(UTC)
            rows.set_name(conn, name, status=status, updated_at=now)
            current = _revision(conn, record.input_digest)
            rows.add_event(
                conn,
                name,
                action=status,
                input_digest=record.input_digest,
                revision=current.n,
                lock_digest=current.lock_digest,
                actor=actor,
                now=now,
            )
            rows.retire_if_unnamed(conn, record.input_digest, now=now, reason=f"name {name} {status}")


def _preferences(
    name: str, current: Lock | None, upgrade: Upgrade | None
) -> dict[NormalizedName, Version] | None:
    """The pins a new input of `name` prefers: the current lock's, less those being upgraded."""
    if current is None:
        if upgrade not in (None, "all"):
            raise UpgradeNotInLock(
                f"{name!r} has no lock yet, so there is nothing to upgrade",
                hint="leave out upgrade= for a new name, or use upgrade=all",
                context={"name": name},
            )
        return None
    pins = current.pins
    if upgrade == "all":
        return None
    upgraded = upgrade or frozenset()
    unknown = sorted(upgraded - set(pins))
    if unknown:
        raise UpgradeNotInLock(
            f"upgrade names {', '.join(unknown)}, which the lock of {name!r} does not pin",
            hint="name packages the current lock pins, or use upgrade=all",
            context={"name": name, "packages": unknown},
        )
    return {package: version for package, version in pins.items() if package not in upgraded}
