"""The lock service: intake → resolve → render → store, refresh, and the reads of stored locks.

`Service.lock` is the reproducibility guarantee: the first request for an input digest
resolves and stores revision 1; every later identical request returns the current revision
without resolving. Identical concurrent requests resolve once, across threads and processes,
through a resolution lease (`lockd.leases`): the holder resolves, the others wait until the
revision appears or the holder records its failure, which they then raise. Refreshes of one
input are single-flight the same way: a refresh arriving while another runs shares its result.
A lock, its rendered files and its revision are written in one transaction, so nothing
partial is ever stored; a resolution past its time budget stores nothing.

Every method is synchronous and may block on the network or the database: the HTTP layer
calls it from a thread pool. The `cached_*` methods never block: the HTTP layer asks them
first, on the event loop, and goes to a thread only when they miss. The reads of stored locks
are `lockd.lock_reads.LockReads`, which `Service` is; tokens are `lockd.tokens`, readiness
`lockd.readiness`, drift runs `lockd.drift_runs`, names `lockd.names`.

A refresh reads the index afresh (`fresh_index`) and never changes what the input serves by
itself: a changed lock becomes a proposal (`lockd.proposals`), promoted at once only when the
operator's policy says so. `lock` takes preferences (a name's current pins, `lockd.names`).
A request asked before is built from memory (`lockd.request_memo`). Past 400 lines this is
still one job, the lock operations; the reads, proposals and intake memo are modules of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from packaging.utils import NormalizedName
from packaging.version import Version
from sqlalchemy import Connection, Engine

from lockd.advisory_check import AdvisoriesRefused, AdvisoryCheck
from lockd.config import Settings
from lockd.drift import Finding, why_pins_moved
from lockd.errors import LockdError
from lockd.index import IndexClient
from lockd.index.tls import prepare_tls_context
from lockd.inputs import LockOptions, LockRequest
from lockd.intake import OffersFor
from lockd.leases import HeldLease, Leases
from lockd.lock import Lock
from lockd.lock_files import render_files
from lockd.lock_reads import LockReads, no_lock
from lockd.proposals import ProposalView, propose
from lockd.readiness import Readiness, check_readiness
from lockd.request_memo import RequestMemo, request_key
from lockd.resolver import ResolveStats, timed_resolve, variant_offers
from lockd.sandbox_builds import metadata_builder_for
from lockd.store import (
    DatabaseHashCache,
    DatabaseMetadataCache,
    LockFileRecord,
    RevisionRecord,
    migrate,
    open_engine,
    queries,
    read,
    transaction,
)
from lockd.store import proposals as proposal_rows
from lockd.stored import LockResult, Revision
from lockd.tokens import Tokens

__all__ = ["LockResult", "RefreshResult", "Service", "render_files"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Preferences = Mapping[NormalizedName, Version]


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshResult:
    input_digest: str
    revision: Revision  # what the input serves now: `previous` unless the policy promoted
    previous: Revision  # the current revision when the refresh began
    stats: ResolveStats | None  # None when this call shared a refresh that was already running
    proposal: ProposalView | None = None  # the input's open (or just promoted) proposal

    @property
    def changed(self) -> bool:
        return self.revision.n != self.previous.n


class Service(LockReads):
    """lockd's lock operations over one database and one shared index client. Thread-safe."""

    def __init__(self, settings: Settings, engine: Engine, index: IndexClient) -> None:
        super().__init__(engine)
        self.settings = settings
        self.index = index
        self.metadata_cache: DatabaseMetadataCache | None = None
        self.tokens = Tokens(engine)
        # Told of every resolution this process runs: (outcome, seconds). The outcome is
        # `created`, `refreshed`, `unchanged` or an error code. Set by the HTTP layer's metrics.
        self.on_resolution: Callable[[str, float], None] | None = None
        self._leases = Leases(engine, "resolution", ttl=settings.lease_ttl)
        self.advisories = AdvisoryCheck.from_settings(settings)
        self._requests = RequestMemo()

    @classmethod
    def open(cls, settings: Settings) -> Service:
        if settings.index_url.startswith("https:"):
            prepare_tls_context()  # read while the app starts: not by the first resolution
        engine = open_engine(settings.database_url)
        metadata_cache = DatabaseMetadataCache(engine)
        index = IndexClient.from_options(
            settings.client_options(),
            metadata_cache=metadata_cache,
            hash_cache=DatabaseHashCache(engine),
            metadata_builder=metadata_builder_for(settings),
        )
        service = cls(settings, engine, index)
        service.metadata_cache = metadata_cache
        return service

    def close(self) -> None:
        self.flush_metadata()
        self.advisories.close()
        self.index.close()
        self.close_reads()
        self.engine.dispose()

    def fresh_index(self) -> IndexClient:
        """A client that reads every page afresh (refresh, drift); metadata is shared by file hash.

        It runs on the shared client's threads and page process, so making one starts none."""
        ttl = max(self.settings.page_ttl, 3600.0)  # fresh when made, stable while it is used
        options = replace(self.settings.client_options(), page_ttl=ttl)
        return IndexClient.from_options(
            options,
            metadata_cache=self.metadata_cache,
            workers=self.index.workers,
            page_worker=self.index.page_worker,
        )

    def resolve_in_budget(
        self, request: LockRequest, index: IndexClient, preferences: Preferences | None = None
    ) -> tuple[Lock, ResolveStats]:
        """Resolve within the time budget, then write the metadata it fetched to the database."""
        try:
            return timed_resolve(request, index, self.settings.resolve_timeout, preferences=preferences)
        finally:
            self.flush_metadata()

    def flush_metadata(self) -> None:
        """Writes queued metadata cache entries. Best effort: a cache that cannot be written is not an error."""
        if self.metadata_cache is None:
            return
        try:
            self.metadata_cache.flush()
        except LockdError as exc:
            log.warning("metadata cache not written (kept for the next flush): %s", exc.message)

    def migrate(self) -> str:
        return migrate(self.engine)

    def readiness(self) -> Readiness:
        path = self.settings.sqlite_path
        return check_readiness(
            self.engine,
            data_dir=None if path is None else path.parent,
            min_free_bytes=self.settings.min_free_disk_mb * 1024 * 1024,
        )

    # -- locking --------------------------------------------------------------------------

    def build_request(
        self,
        *,
        requirements: str,
        target: Mapping[str, object],
        constraints: str = "",
        options: LockOptions | None = None,
        indexes: Sequence[str] = (),
    ) -> LockRequest:
        """`indexes` selects configured private indexes by name (never by URL). A request asked
        before is answered from memory (`lockd.request_memo`)."""
        key = request_key(requirements, target, constraints, options, indexes)
        known = self._requests.get(key)
        if known is not None:
            return known
        settings = self.settings

        def build(offers: OffersFor) -> LockRequest:
            return settings.build_request(
                requirements=requirements,
                target=target,
                constraints=constraints,
                options=options,
                indexes=indexes,
                offers=offers,
            )

        return self._requests.build(key, build, variant_offers(self.index, settings.index_plan_for(indexes)))

    def known_request(
        self,
        *,
        requirements: str,
        target: Mapping[str, object],
        constraints: str = "",
        options: LockOptions | None = None,
        indexes: Sequence[str] = (),
    ) -> LockRequest | None:
        """What `build_request` would answer, if it has answered it before; never blocks."""
        return self._requests.get(request_key(requirements, target, constraints, options, indexes))

    def _take_turn(
        self, digest: str, stored: Callable[[Connection, bool], RevisionRecord | None]
    ) -> Revision | HeldLease:
        # A waiter gives up only after the holder's budget and one lease TTL: by then a holder
        # that died or overran has stopped renewing, its lease has expired and this caller holds it.
        budget = self.settings.resolve_timeout
        turn = self._leases.take_turn(digest, stored, budget=budget, wait=budget + self.settings.lease_ttl)
        return turn if isinstance(turn, HeldLease) else Revision.of(turn)

    def _resolve_and_store(
        self,
        lease: HeldLease,
        resolve: Callable[[], tuple[Lock, ResolveStats]],
        store: Callable[[Connection, Lock, list[LockFileRecord]], T],
        *,
        screen: bool = False,
    ) -> tuple[T, Lock, ResolveStats, float]:
        """As the lease holder: resolve, render, (`screen`: apply the advisory policy), then
        `store` and release in one transaction.

        On failure the lease records the error for the waiters. Returns when the work started.
        """
        started = time.monotonic()
        try:
            with lease.renewing():
                lock, stats = resolve()
                files = render_files(lock)
                if screen:
                    self.advisories.screen(lock)
            with transaction(self.engine, write=True) as conn:
                stored = store(conn, lock, files)
                lease.release(conn)
        except AdvisoriesRefused as exc:
            # This server's policy, not the input's fault: a server refusing at another level
            # must not be handed this refusal as a failed lease's answer.
            lease.release()
            self._observe(exc.code, started)
            raise
        except LockdError as exc:
            lease.fail(exc)
            self._observe(exc.code, started)
            raise
        except BaseException:
            lease.release()
            raise
        return stored, lock, stats, started

    def lock(
        self,
        request: LockRequest,
        *,
        preferences: Preferences | None = None,
        on_create: Callable[[Connection, RevisionRecord], object] | None = None,
    ) -> LockResult:
        """The current revision of `request`'s input, resolving it first if it was never locked.

        A resolution tries `preferences` first; `on_create(conn, revision)` joins the transaction
        that stores a new input (a name moving to it, its provenance), so both land or neither.
        """
        digest = request.digest
        turn = self._take_turn(digest, lambda conn, _released: queries.current_revision(conn, digest))
        if isinstance(turn, Revision):
            return LockResult(input_digest=digest, revision=turn, created=False, stats=None)

        def store(conn: Connection, lock: Lock, files: list[LockFileRecord]) -> tuple[RevisionRecord, bool]:
            current = queries.current_revision(conn, digest)
            if current is not None:
                return current, False
            now = datetime.now(UTC)
            queries.put_input(conn, digest, request.canonical_bytes(), now)
            self.put_lock(conn, lock, files, now)
            created = queries.put_revision(
                conn, input_digest=digest, n=1, lock_digest=lock.digest, reason="created", now=now
            )
            if on_create is not None:
                on_create(conn, created)
            return created, True

        def resolve() -> tuple[Lock, ResolveStats]:
            return self.resolve_in_budget(request, self.index, preferences)

        (current, created), lock, stats, started = self._resolve_and_store(turn, resolve, store, screen=True)
        self._observe("created" if created else "discarded", started)
        seconds = round(stats.seconds, 3)
        log.info("resolved", extra={"input_digest": digest, "lock_digest": lock.digest, "seconds": seconds})
        return LockResult(input_digest=digest, revision=Revision.of(current), created=created, stats=stats)

    def _observe(self, outcome: str, started: float) -> None:
        if self.on_resolution is not None:
            self.on_resolution(outcome, time.monotonic() - started)

    @staticmethod
    def put_lock(conn: Connection, lock: Lock, files: list[LockFileRecord], now: datetime) -> None:
        queries.put_lock(
            conn,
            digest=lock.digest,
            input_digest=lock.input_digest,
            canonical=lock.canonical_bytes(),
            packages={p.name: str(p.version) for p in lock.packages},
            files=files,
            now=now,
        )

    def refresh(
        self,
        input_digest: str,
        *,
        preferences: Preferences | None = None,
        source: str = "refresh",
        actor: str | None = None,
    ) -> RefreshResult:
        """Re-resolve a stored input against the index as it is now; a changed lock is proposed.

        A refresh of the same input already running is shared: this call waits for it and
        answers with its outcome (or its error) instead of resolving again. `preferences` keep
        pins (an `upgrade=` of named packages); `source` and `actor` are recorded on the proposal.
        """
        with transaction(self.engine, write=False) as conn:
            stored = queries.get_input(conn, input_digest)
            arrived = queries.current_revision(conn, input_digest)
            old = None if arrived is None else queries.get_lock_canonical(conn, arrived.lock_digest)
        if stored is None or arrived is None or old is None:
            raise no_lock(input_digest)
        request, before = LockRequest.from_json(stored.canonical), Lock.from_json(old)
        turn = self._take_turn(
            input_digest,
            lambda conn, released: queries.current_revision(conn, input_digest) if released else None,
        )
        if isinstance(turn, Revision):
            shared = self.open_proposal(input_digest)
            return RefreshResult(
                input_digest=input_digest,
                revision=turn,
                previous=Revision.of(arrived),
                stats=None,
                proposal=shared,
            )
        findings: list[Finding] = []

        def resolve() -> tuple[Lock, ResolveStats]:
            with self.fresh_index() as index:
                lock, stats = self.resolve_in_budget(request, index, preferences)
                if lock.digest != before.digest:
                    findings.extend(why_pins_moved(before, index))
            return lock, stats

        def store(
            conn: Connection, lock: Lock, files: list[LockFileRecord]
        ) -> tuple[RevisionRecord, RevisionRecord, ProposalView | None]:
            previous = queries.current_revision(conn, input_digest)
            assert previous is not None  # an input is stored with its first revision
            if previous.lock_digest == lock.digest:
                return previous, previous, None
            now = datetime.now(UTC)
            self.put_lock(conn, lock, files, now)
            decided = propose(
                conn,
                input_digest=input_digest,
                new=lock,
                findings=findings,
                source=source,
                actor=actor,
                default_policy=self.settings.auto_promote,
                now=now,
            )
            if decided is None:
                return previous, previous, None
            return decided.revision or previous, previous, decided.proposal

        (current, previous, proposal), _lock, stats, started = self._resolve_and_store(turn, resolve, store)
        self._observe("refreshed" if current.n != previous.n else "unchanged", started)
        revision, before_revision = Revision.of(current), Revision.of(previous)
        return RefreshResult(
            input_digest=input_digest,
            revision=revision,
            previous=before_revision,
            stats=stats,
            proposal=proposal,
        )

    def open_proposal(self, input_digest: str) -> ProposalView | None:
        found = read(self.engine, lambda conn: proposal_rows.open_proposal(conn, input_digest))
        return None if found is None else ProposalView.of(found)
