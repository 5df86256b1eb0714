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
(`lockd.proposals`). What names look like to readers is `lockd.name_views`.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from sqlalchemy import Connection

from lockd.errors import LockdError
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.lock_diff import AutoPromote
from lockd.name_views import (
    LockStatus,
    NameEvent,
    NameView,
    Provenance,
    current_revision,
    get_name,
    get_proposal,
    input_proposals,
    list_names,
    lock_provenance,
    lock_status,
    name_history,
    unknown_name,
)
from lockd.naming import parse_lock_name
from lockd.proposals import ProposalView, promote
from lockd.service import RefreshResult, Service
from lockd.store import RevisionRecord, queries, read, transaction
from lockd.store import names as rows
from lockd.store.names import NameRecord
from lockd.stored import LockResult, Revision

__all__ = ["NameArchived", "NamedLock", "Names", "Upgrade", "UpgradeNotInLock", "parse_upgrade"]

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
class NamedLock:
    name: str
    result: LockResult
    moved: bool  # the name points at another input (or is new) since this call
    previous_input: str | None
    proposal: ProposalView | None  # an upgrade of an input already locked proposes


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
                did_move = self._move(conn, name, current_revision(conn, digest), actor, datetime.now(UTC))
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
            canonical = queries.get_lock_canonical(
                conn, current_revision(conn, named.input_digest).lock_digest
            )
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

    # -- reads (lockd.name_views) -------------------------------------------------------------

    def get(self, name: str) -> NameView:
        return get_name(self._service.engine, name)

    def list(self, *, statuses: tuple[str, ...] | None = ("active",)) -> builtins.list[NameView]:
        return list_names(self._service.engine, statuses=statuses)

    def history(self, name: str) -> builtins.list[NameEvent]:
        return name_history(self._service.engine, name)

    def proposals(self, input_digest: str) -> builtins.list[ProposalView]:
        return input_proposals(self._service.engine, input_digest)

    def proposal(self, proposal_id: int, *, input_digest: str | None = None) -> ProposalView:
        return get_proposal(self._service.engine, proposal_id, input_digest=input_digest)

    def provenance(self, lock_digest: str) -> Provenance | None:
        return lock_provenance(self._service.engine, lock_digest)

    def status(self, *, name: str | None = None, input_digest: str | None = None) -> LockStatus:
        return lock_status(self._service.engine, name=name, input_digest=input_digest)

    # -- changing what a name serves ---------------------------------------------------------

    def refresh(self, name: str, *, actor: str | None = None) -> RefreshResult:
        """Re-resolve the name's current input against the index now: a proposal if it changed."""
        return self._service.refresh(self.get(name).input_digest, actor=actor)

    def promote(self, proposal_id: int, *, actor: str | None, name: str | None = None) -> ProposalView:
        """Promote a proposal (through `name`, which must still point at its input): 409 if stale."""
        with transaction(self._service.engine, write=True) as conn:
            if name is not None and rows.get_name(conn, name) is None:
                raise unknown_name(name)
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
                raise unknown_name(name)
            rows.delete_name(conn, name)
            rows.retire_if_unnamed(
                conn, record.input_digest, now=datetime.now(UTC), reason=f"name {name} deleted"
            )

    def set_policy(self, name: str, policy: AutoPromote | None) -> NameView:
        with transaction(self._service.engine, write=True) as conn:
            if rows.get_name(conn, name, for_update=True) is None:
                raise unknown_name(name)
            rows.set_name(conn, name, auto_promote=policy)
        return self.get(name)

    def _set_status(self, name: str, status: str, actor: str | None) -> None:
        with transaction(self._service.engine, write=True) as conn:
            record = rows.get_name(conn, name, for_update=True)
            if record is None:
                raise unknown_name(name)
            if record.status == status:
                return
            now = datetime.now(UTC)
            rows.set_name(conn, name, status=status, updated_at=now)
            current = current_revision(conn, record.input_digest)
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
