"""The one place the flow is wired: intake → resolve → render → store, refresh, reads, tokens.

`Service.lock` is the reproducibility guarantee: the first request for an input digest
resolves and stores revision 1; every later identical request returns the current revision
without resolving. Identical concurrent requests resolve once, across threads and processes,
through a lease row in the database (`resolution_leases`): the holder resolves, the others
poll until the revision appears or the holder records its failure, which they then raise.
A lock, its rendered files and its revision are written in one transaction, so nothing
partial is ever stored; a resolution past its time budget stores nothing.

Every method is synchronous and may block on the network or the database: the HTTP layer
calls it from a thread pool. The `cached_*` methods never block: the HTTP layer asks them
first, on the event loop, and goes to a thread only when they miss.

Serving a stored lock is one read transaction: the current revision, and the rendered file
from a process-local LRU (a lock digest's files are written once and never change, so the cache
is never stale). Token scopes are cached for `TOKEN_CACHE_SECONDS`: a token revoked in
the database keeps working for at most that long in a process that has just seen it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, Engine

from lockd.config import Settings
from lockd.drift import (
    ALERT_KINDS,
    FINDING_KINDS,
    DriftReport,
    DriftRunInProgress,
    Finding,
    FindingKind,
    check_files,
    drift_for,
)
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest
from lockd.lock import Lock
from lockd.render import FORMATS, render
from lockd.standalone import ResolveStats, build_request, index_client, timed_resolve
from lockd.store import (
    DatabaseHashCache,
    DatabaseMetadataCache,
    LockFileRecord,
    LockSummary,
    RevisionRecord,
    head_revision,
    migrate,
    open_engine,
    queries,
    read,
    schema_revision,
    transaction,
)
from lockd.store import drift as drift_store
from lockd.store.drift import DriftResultRecord, DriftRunRecord
from lockd.tokens import granted_scopes

__all__ = [
    "TOKEN_CACHE_SECONDS",
    "DriftLockView",
    "LockResult",
    "Readiness",
    "RefreshResult",
    "Service",
    "drift_findings",
    "drift_lock",
    "drift_results",
    "drift_run",
    "drift_runs",
    "drift_summary",
    "latest_drift_run",
    "run_drift",
]

log = logging.getLogger(__name__)

_TOKEN_PREFIX = "lockd_"
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
# A failed holder's error is kept this long for the waiters that were polling it.
_FAILURE_VISIBLE = 10.0
_LEASE_SLACK = 30.0
# How long a token's scopes are trusted without asking the database: the bound on how long a
# revoked token keeps working. Unknown tokens are never cached (a new token works at once).
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_ENTRIES = 1024
# Rendered files kept in memory per process, by total size (a torch lock's pylock.toml is ~100 KiB).
_FILE_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LockResult:
    """The current revision of an input, and whether this call created or resolved it."""

    input_digest: str
    revision: RevisionRecord
    created: bool
    stats: ResolveStats | None  # set only when this call ran the resolution

    @property
    def lock_digest(self) -> str:
        return self.revision.lock_digest


@dataclass(frozen=True, slots=True)
class RefreshResult:
    input_digest: str
    revision: RevisionRecord
    previous: RevisionRecord
    changed: bool
    stats: ResolveStats


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    database: bool
    schema: str | None
    head: str
    detail: str


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise NotFound(f"no file {fmt!r}", hint="files: " + ", ".join(FORMATS), context={"file": fmt})


def _token_hash(token: str) -> str:
    # A 256-bit random token needs no slow KDF: sha256 is preimage-resistant at that entropy.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _render_all(lock: Lock) -> list[LockFileRecord]:
    files = []
    digest = lock.digest
    for name, spec in FORMATS.items():
        content = render(lock, name)
        files.append(
            LockFileRecord(digest, name, hashlib.sha256(content).hexdigest(), spec.media_type, content)
        )
    return files


class _RenderedFiles:
    """A thread-safe LRU of rendered lock files by (lock digest, format), bounded in bytes.

    Safe without invalidation: a lock digest's files are written once and never change.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[tuple[str, str], LockFileRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, lock_digest: str, fmt: str) -> LockFileRecord | None:
        key = (lock_digest, fmt)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, record: LockFileRecord) -> None:
        size = len(record.content)
        if size > self._max_bytes // 8:
            return  # one huge file must not flush everything else
        key = (record.lock_digest, record.format)
        with self._lock:
            if key in self._items:
                return
            self._items[key] = record
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.content)


class _RecentTokens:
    """Scopes of tokens the database confirmed in the last `ttl` seconds, by token hash."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._items: dict[str, tuple[frozenset[str], float]] = {}
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> frozenset[str] | None:
        with self._lock:
            found = self._items.get(token_hash)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, token_hash: str, scopes: frozenset[str]) -> None:
        with self._lock:
            if len(self._items) >= self._max_entries:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[1] >= now}
                if len(self._items) >= self._max_entries:
                    self._items.clear()
            self._items[token_hash] = (scopes, time.monotonic() + self._ttl)

    def forget(self, token_hash: str) -> None:
        with self._lock:
            self._items.pop(token_hash, None)


class Service:
    """lockd's operations over one database and one shared index client. Thread-safe."""

    def __init__(self, settings: Settings, engine: Engine, index: IndexClient) -> None:
        self.settings = settings
        self.engine = engine
        self.index = index
        self.metadata_cache: DatabaseMetadataCache | None = None
        self.resolve: Callable[..., tuple[Lock, ResolveStats]] = timed_resolve
        # Told of every resolution this process runs: (outcome, seconds). The outcome is
        # `created`, `refreshed`, `unchanged` or an error code. Set by the HTTP layer's metrics.
        self.on_resolution: Callable[[str, float], None] | None = None
        self._files = _RenderedFiles(_FILE_CACHE_BYTES)
        self._tokens = _RecentTokens(TOKEN_CACHE_SECONDS, _TOKEN_ENTRIES)

    @classmethod
    def open(cls, settings: Settings) -> Service:
        engine = open_engine(settings.database_url)
        metadata_cache = DatabaseMetadataCache(engine)
        index = index_client(settings, metadata_cache=metadata_cache, hash_cache=DatabaseHashCache(engine))
        service = cls(settings, engine, index)
        service.metadata_cache = metadata_cache
        return service

    def close(self) -> None:
        self.flush_metadata()
        self.index.close()
        self.engine.dispose()

    def resolve_now(self, request: LockRequest, index: IndexClient) -> tuple[Lock, ResolveStats]:
        """`self.resolve` within the time budget, then the metadata it fetched goes to the database."""
        try:
            return self.resolve(request, index, self.settings.resolve_timeout)
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

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> str:
        return migrate(self.engine)

    def readiness(self) -> Readiness:
        head = head_revision()
        try:
            current = schema_revision(self.engine)
        except LockdError as exc:
            return Readiness(False, False, None, head, exc.message)
        if current != head:
            return Readiness(
                False, True, current, head, f"schema at {current}, head is {head}: run `lockd migrate`"
            )
        return Readiness(True, True, current, head, "ok")

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
        return build_request(
            self.settings,
            requirements=requirements,
            target=target,
            constraints=constraints,
            options=options,
            indexes=indexes,
        )

    def lock(self, request: LockRequest) -> LockResult:
        """The current revision of `request`'s input, resolving it first if it was never locked."""
        digest = request.digest
        holder = uuid.uuid4().hex
        for _ in self._wait_turn(digest, holder):
            with transaction(self.engine, write=False) as conn:
                current = queries.current_revision(conn, digest)
            if current is not None:
                return LockResult(digest, current, created=False, stats=None)
        # We hold the lease: resolve, then write everything in one transaction.
        started = time.monotonic()
        try:
            with self._renewing(digest, holder):
                lock, stats = self.resolve_now(request, self.index)
                files = _render_all(lock)
            with transaction(self.engine, write=True) as conn:
                current = queries.current_revision(conn, digest)
                created = current is None
                if current is None:
                    now = _now()
                    queries.put_input(conn, digest, request.canonical_bytes(), now)
                    self._put_lock(conn, lock, files, now)
                    current = queries.put_revision(
                        conn, input_digest=digest, n=1, lock_digest=lock.digest, reason="created", now=now
                    )
                queries.release_lease(conn, digest, holder)
        except LockdError as exc:
            self._record_failure(digest, holder, exc)
            self._observe(exc.code, started)
            raise
        except BaseException:
            self._release(digest, holder)
            raise
        self._observe("created" if created else "discarded", started)
        log.info(
            "resolved",
            extra={"input_digest": digest, "lock_digest": lock.digest, "seconds": round(stats.seconds, 3)},
        )
        return LockResult(digest, current, created=created, stats=stats)

    def _wait_turn(self, digest: str, holder: str) -> Iterator[None]:
        """Yields before each attempt to find a stored revision; returns once we hold the lease.

        The caller returns from inside the loop when it finds the revision. Waiting ends when
        the lease is ours, or raises the error the holder recorded while we waited.
        """
        pause = _POLL_FIRST
        while True:
            yield
            with transaction(self.engine, write=False) as conn:
                lease = queries.get_lease(conn, digest)
            if lease is not None and lease.state == "failed" and lease.error is not None:
                error = LockdError.from_json(lease.error)
                # It failed while we waited: its answer is ours too. A request arriving just after
                # shares it only when the input itself is at fault (4xx); an index or time-out
                # failure (5xx) may be transient, so a newcomer tries again.
                if pause > _POLL_FIRST or (error.status < 500 and lease.expires_at >= time.time()):
                    raise error
            if lease is None or lease.state == "failed" or lease.expires_at < time.time():
                with transaction(self.engine, write=True) as conn:
                    if queries.current_revision(conn, digest) is not None:
                        continue
                    if queries.acquire_lease(
                        conn, digest, holder, now=time.time(), ttl=self.settings.lease_ttl
                    ):
                        return
            time.sleep(pause)
            pause = min(pause * 1.5, _POLL_MAX)

    @contextmanager
    def _renewing(self, digest: str, holder: str) -> Iterator[None]:
        """Keeps our resolution lease alive while the body runs."""
        stop = threading.Event()

        def renew() -> None:
            ttl = self.settings.lease_ttl
            while not stop.wait(ttl / 3):
                try:
                    with transaction(self.engine, write=True) as conn:
                        queries.renew_lease(conn, digest, holder, expires_at=time.time() + ttl)
                except LockdError:
                    log.warning("could not renew a resolution lease", extra={"input_digest": digest})

        beat = threading.Thread(target=renew, name="lockd-lease-renew", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()

    def _observe(self, outcome: str, started: float) -> None:
        if self.on_resolution is not None:
            self.on_resolution(outcome, time.monotonic() - started)

    def _record_failure(self, digest: str, holder: str, exc: LockdError) -> None:
        try:
            with transaction(self.engine, write=True) as conn:
                queries.fail_lease(
                    conn, digest, holder, exc.to_json(), expires_at=time.time() + _FAILURE_VISIBLE
                )
        except LockdError:
            log.warning("could not record a failed resolution", extra={"input_digest": digest})
            self._release_when_possible(digest, holder)

    def _release(self, digest: str, holder: str) -> None:
        try:
            with transaction(self.engine, write=True) as conn:
                queries.release_lease(conn, digest, holder)
        except LockdError:
            log.warning("could not release a resolution lease", extra={"input_digest": digest})
            self._release_when_possible(digest, holder)

    def _release_when_possible(self, digest: str, holder: str) -> None:
        """Keep trying to drop our lease in the background once the database is back.

        Without this, a database blip during a resolution leaves a `running` lease that makes
        every later request for the same input wait out the whole lease TTL (minutes).
        """
        give_up = time.monotonic() + self.settings.resolve_timeout + _LEASE_SLACK

        def retry() -> None:
            while time.monotonic() < give_up:
                time.sleep(1.0)
                try:
                    with transaction(self.engine, write=True) as conn:
                        queries.release_lease(conn, digest, holder)
                except LockdError:
                    continue
                log.info(
                    "released a resolution lease after a database failure", extra={"input_digest": digest}
                )
                return

        threading.Thread(target=retry, name="lockd-lease-release", daemon=True).start()

    @staticmethod
    def _put_lock(conn: Connection, lock: Lock, files: list[LockFileRecord], now: datetime) -> None:
        queries.put_lock(
            conn,
            digest=lock.digest,
            input_digest=lock.input_digest,
            canonical=lock.canonical_bytes(),
            packages={p.name: str(p.version) for p in lock.packages},
            files=files,
            now=now,
        )

    def refresh(self, input_digest: str) -> RefreshResult:
        """Re-resolve a stored input; append a revision only if the lock changed."""
        with transaction(self.engine, write=False) as conn:
            stored = queries.get_input(conn, input_digest)
        if stored is None:
            raise NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})
        request = LockRequest.from_json(stored.canonical)
        holder = uuid.uuid4().hex
        pause = _POLL_FIRST
        while True:
            with transaction(self.engine, write=True) as conn:
                if queries.acquire_lease(
                    conn, input_digest, holder, now=time.time(), ttl=self.settings.lease_ttl
                ):
                    break
            time.sleep(pause)
            pause = min(pause * 1.5, _POLL_MAX)
        started = time.monotonic()
        try:
            with self._renewing(input_digest, holder):
                lock, stats = self.resolve_now(request, self.index)
                files = _render_all(lock)
            with transaction(self.engine, write=True) as conn:
                previous = queries.current_revision(conn, input_digest)
                assert previous is not None  # an input is stored with its first revision
                current = previous
                if previous.lock_digest != lock.digest:
                    now = _now()
                    self._put_lock(conn, lock, files, now)
                    current = queries.put_revision(
                        conn,
                        input_digest=input_digest,
                        n=previous.n + 1,
                        lock_digest=lock.digest,
                        reason="refresh",
                        now=now,
                    )
                queries.release_lease(conn, input_digest, holder)
        except LockdError as exc:
            self._release(input_digest, holder)
            self._observe(exc.code, started)
            raise
        except BaseException:
            self._release(input_digest, holder)
            raise
        self._observe("refreshed" if current.n != previous.n else "unchanged", started)
        return RefreshResult(input_digest, current, previous, current.n != previous.n, stats)

    # -- reads ----------------------------------------------------------------------------

    def current(self, input_digest: str) -> RevisionRecord:
        found = read(self.engine, lambda conn: queries.current_revision(conn, input_digest))
        if found is None:
            raise NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})
        return found

    def revision(self, input_digest: str, n: int) -> RevisionRecord:
        found = read(self.engine, lambda conn: queries.revision(conn, input_digest, n))
        if found is None:
            raise NotFound(
                f"input {input_digest} has no revision {n}",
                context={"input_digest": input_digest, "revision": n},
            )
        return found

    def revisions(self, input_digest: str) -> list[RevisionRecord]:
        found = read(self.engine, lambda conn: queries.list_revisions(conn, input_digest))
        if not found:
            raise NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})
        return found

    def input_canonical(self, input_digest: str) -> dict[str, Any]:
        stored = read(self.engine, lambda conn: queries.get_input(conn, input_digest))
        if stored is None:
            raise NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})
        return stored.canonical

    def lock_file(self, lock_digest: str, fmt: str) -> LockFileRecord:
        _check_format(fmt)
        found = self._files.get(lock_digest, fmt)
        if found is None:
            found = read(self.engine, lambda conn: self._read_file(conn, lock_digest, fmt))
        if found is None:
            raise NotFound(f"no lock {lock_digest}", context={"lock_digest": lock_digest})
        return found

    def cached_file(self, lock_digest: str, fmt: str) -> LockFileRecord | None:
        """The rendered file if this process has it in memory; never blocks."""
        return self._files.get(lock_digest, fmt)

    def current_file(self, input_digest: str, fmt: str) -> tuple[RevisionRecord, LockFileRecord]:
        """The current revision of a stored input and its file in `fmt`, in one read."""
        _check_format(fmt)
        found = read(self.engine, lambda conn: self._read_current_file(conn, input_digest, fmt))
        if found is None:
            raise NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})
        return found

    def stored_lock_and_file(
        self, request: LockRequest, fmt: str
    ) -> tuple[LockResult, LockFileRecord] | None:
        """The current revision of a stored input and its file in `fmt`, in one read; None if never locked."""
        _check_format(fmt)
        digest = request.digest
        stored = read(self.engine, lambda conn: self._read_current_file(conn, digest, fmt))
        if stored is None:
            return None
        return LockResult(digest, stored[0], created=False, stats=None), stored[1]

    def _read_file(self, conn: Connection, lock_digest: str, fmt: str) -> LockFileRecord | None:
        found = queries.get_lock_file(conn, lock_digest, fmt)
        if found is not None:
            self._files.put(found)
        return found

    def _read_current_file(
        self, conn: Connection, input_digest: str, fmt: str
    ) -> tuple[RevisionRecord, LockFileRecord] | None:
        current = queries.current_revision(conn, input_digest)
        if current is None:
            return None
        found = self._files.get(current.lock_digest, fmt) or self._read_file(conn, current.lock_digest, fmt)
        if found is None:  # a revision's lock and files are written with it, in one transaction
            raise NotFound(f"no lock {current.lock_digest}", context={"lock_digest": current.lock_digest})
        return current, found

    def list_locks(
        self,
        *,
        limit: int,
        after: str | None = None,
        platform: str | None = None,
        python: str | None = None,
        cuda: str | None = None,
        package: str | None = None,
    ) -> list[LockSummary]:
        return read(
            self.engine,
            lambda conn: queries.list_locks(
                conn, limit=limit, after=after, platform=platform, python=python, cuda=cuda, package=package
            ),
        )

    # -- tokens ---------------------------------------------------------------------------

    def create_token(self, *, name: str, scope: str) -> str:
        """A new bearer token with `scope` (and the scopes it includes); shown once, stored hashed."""
        granted = granted_scopes(scope)
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self.engine, write=True) as conn:
            queries.create_token(conn, name=name, token_hash=_token_hash(token), scopes=granted, now=_now())
        return token

    def authenticate(self, token: str) -> frozenset[str] | None:
        """The scopes of a live token, or None. The hash is compared in constant time.

        A live token is remembered for `TOKEN_CACHE_SECONDS` (see `cached_scopes`).
        """
        presented = _token_hash(token)
        found = read(self.engine, lambda conn: queries.find_token(conn, presented))
        if found is None:
            self._tokens.forget(presented)
            return None
        if not hmac.compare_digest(found.token_hash, presented):
            return None
        self._tokens.put(presented, found.scopes)
        return found.scopes

    def cached_scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a token the database confirmed in the last `TOKEN_CACHE_SECONDS`, else
        None (unknown here, not necessarily invalid: ask `authenticate`). Never blocks."""
        return self._tokens.get(_token_hash(token))


# == drift runs (the drift issue) ==========================================================
# `lockd.drift` compares; this wires it to the store, the index and the webhook. One run at
# a time across replicas (a lease row in `drift_lease`, renewed by a heartbeat thread); the
# locks are checked on a small thread pool and each verdict is stored as it arrives.

# A run renews its lease every LOCKD_DRIFT_LEASE_TTL / 4 seconds; a run whose heartbeat is
# older than the TTL is dead (killed, OOM, power loss) and is shown and recorded as abandoned.
_DRIFT_PAGE_SIZE = 500
_WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DriftLockView:
    """One lock on the dashboard: its latest verdict, its findings, its revisions."""

    result: DriftResultRecord
    findings: tuple[Finding, ...]
    revisions: tuple[queries.RevisionRecord, ...]
    run: DriftRunRecord


def _stored_inputs(service: Service) -> list[LockSummary]:
    found: list[LockSummary] = []
    after: str | None = None
    while True:
        with transaction(service.engine, write=False) as conn:
            page = queries.list_locks(conn, limit=_DRIFT_PAGE_SIZE, after=after)
        found.extend(page)
        if len(page) < _DRIFT_PAGE_SIZE:
            return found
        after = page[-1].input_digest


def _check_one(service: Service, summary: LockSummary, index: IndexClient) -> DriftReport:
    """Both halves of drift for one lock. Never raises a LockdError: failures become findings."""
    with transaction(service.engine, write=False) as conn:
        canonical = queries.get_lock_canonical(conn, summary.lock_digest)
        stored = queries.get_input(conn, summary.input_digest)
    if canonical is None or stored is None:
        raise NotFound(f"lock {summary.lock_digest} vanished during the drift run")
    lock = Lock.from_json(canonical)
    try:
        file_findings = check_files(lock, index)
    except LockdError as exc:
        file_findings = [
            Finding(
                kind="unresolvable",
                message=f"could not re-check the pinned files: {exc.message}",
                code=exc.code,
            )
        ]
    fresh: Lock | LockdError
    try:
        fresh, _stats = service.resolve_now(LockRequest.from_json(stored.canonical), index)
    except LockdError as exc:
        fresh = exc
    return drift_for(lock, fresh, file_findings)


class _Heartbeat:
    """Keeps the lease and the run's heartbeat fresh while workers block on the network."""

    def __init__(self, service: Service, run_id: int, holder: str, ttl: float) -> None:
        self._service, self._run_id, self._holder, self._ttl = service, run_id, holder, ttl
        self._stop = threading.Event()
        self.checked = 0
        self.lost = False
        self._thread = threading.Thread(
            target=self._loop, name=f"lockd-drift-heartbeat-{run_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._ttl / 4):
            try:
                with transaction(self._service.engine, write=True) as conn:
                    kept = drift_store.heartbeat(
                        conn,
                        self._run_id,
                        self._holder,
                        now=datetime.now(UTC),
                        ttl=self._ttl,
                        locks_checked=self.checked,
                    )
            except LockdError as exc:
                log.warning("drift heartbeat failed: %s", exc.message)
                continue
            if not kept:
                self.lost = True
                log.error("drift run %s lost its lease", self._run_id)


def _begin_run(
    service: Service, holder: str, *, trigger: str, scheduled_for: datetime | None, ttl: float, total: int
) -> int | None:
    """Take the lease, retire dead runs and start ours; None when `scheduled_for` is already covered."""
    with transaction(service.engine, write=True) as conn:
        if not drift_store.acquire_drift_lease(conn, holder, now=time.time(), ttl=ttl):
            raise DriftRunInProgress(
                "another drift run is in progress",
                hint="wait for it to finish: GET /v1/drift shows the latest run",
            )
        abandoned = drift_store.abandon_stale_runs(conn, now=datetime.now(UTC))
        if abandoned:
            log.warning("drift runs %s were interrupted and are marked abandoned", abandoned)
        if scheduled_for is not None and drift_store.run_covers(conn, scheduled_for):
            drift_store.release_drift_lease(conn, holder)
            return None
        return drift_store.start_run(
            conn,
            trigger=trigger,
            holder=holder,
            now=datetime.now(UTC),
            locks_total=total,
            scheduled_for=scheduled_for,
        )


def run_drift(
    service: Service,
    *,
    trigger: str = "cli",
    scheduled_for: datetime | None = None,
    workers: int | None = None,
    lease_ttl: float | None = None,
    index_factory: Callable[[], IndexClient] | None = None,
    on_started: Callable[[int], None] | None = None,
) -> DriftRunRecord | None:
    """One drift run over every stored input's current revision; stored, then returned.

    Raises `DriftRunInProgress` if another run (in any replica) holds the lease. With
    `scheduled_for`, returns None without running when a run already started since that tick.
    `on_started(run_id)` is called once the run is recorded (the HTTP layer answers 202 then).
    The index is read through a client of its own, so no page cached before the run hides a
    change; metadata is still shared through the database cache (it is keyed by file hash).
    """
    workers = workers or service.settings.drift_workers
    lease_ttl = lease_ttl or service.settings.drift_lease_ttl
    holder = uuid.uuid4().hex
    inputs = _stored_inputs(service)
    run_id = _begin_run(
        service, holder, trigger=trigger, scheduled_for=scheduled_for, ttl=lease_ttl, total=len(inputs)
    )
    if run_id is None:
        log.info("drift tick %s already covered by another run", scheduled_for)
        return None
    if on_started is not None:
        on_started(run_id)
    started = time.monotonic()
    counts: dict[FindingKind, int] = dict.fromkeys(FINDING_KINDS, 0)
    log.info("drift run %s started (%s): %d locks, %d workers", run_id, trigger, len(inputs), workers)
    factory = index_factory or (lambda: _drift_index(service))
    try:
        with _Heartbeat(service, run_id, holder, lease_ttl) as beat, factory() as index:
            _check_all(service, run_id, inputs, index, workers=workers, counts=counts, beat=beat)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        _finish(service, run_id, holder, status="failed", started=started, counts=counts, error=error)
        log.error("drift run %s failed: %s", run_id, error)
        raise
    record = _finish(service, run_id, holder, status="complete", started=started, counts=counts, error=None)
    log.info(
        "drift run %s complete in %.1f s: %s",
        run_id,
        record.duration_seconds or 0.0,
        ", ".join(f"{kind} {n}" for kind, n in counts.items() if n),
    )
    _notify(service, record)
    return record


def _drift_index(service: Service) -> IndexClient:
    settings = service.settings
    # Fresh at the start of the run, shared within it.
    return index_client(
        settings, page_ttl=max(settings.page_ttl, 3600.0), metadata_cache=service.metadata_cache
    )


def _check_all(
    service: Service,
    run_id: int,
    inputs: list[LockSummary],
    index: IndexClient,
    *,
    workers: int,
    counts: dict[FindingKind, int],
    beat: _Heartbeat,
) -> None:
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"lockd-drift-{run_id}")
    try:
        futures: dict[Future[DriftReport], LockSummary] = {
            pool.submit(_check_one, service, summary, index): summary for summary in inputs
        }
        for future in as_completed(futures):
            summary = futures[future]
            report = future.result()
            with transaction(service.engine, write=True) as conn:
                drift_store.put_report(conn, run_id, summary.revision, report, now=datetime.now(UTC))
            counts[report.status] += 1
            beat.checked += 1
            log.info(
                "drift run %s: %d/%d locks checked; %s is %s",
                run_id,
                beat.checked,
                len(inputs),
                summary.input_digest[:12],
                report.status,
            )
            if beat.lost:
                raise DriftRunInProgress("the drift lease was lost to another run; this run stops")
    finally:
        # On failure, do not wait for locks nobody will record.
        pool.shutdown(wait=True, cancel_futures=True)


def _finish(
    service: Service,
    run_id: int,
    holder: str,
    *,
    status: drift_store.RunStatus,
    started: float,
    counts: dict[FindingKind, int],
    error: str | None,
) -> DriftRunRecord:
    with transaction(service.engine, write=True) as conn:
        drift_store.finish_run(
            conn,
            run_id,
            status=status,
            now=datetime.now(UTC),
            duration_seconds=time.monotonic() - started,
            counts=counts,
            locks_checked=sum(counts.values()),
            error=error,
        )
        drift_store.release_drift_lease(conn, holder)
        record = drift_store.get_run(conn, run_id)
    assert record is not None
    return record


def drift_summary(record: DriftRunRecord) -> dict[str, Any]:
    """The JSON a webhook receives and `GET /v1/drift` starts with."""
    return {
        "run_id": record.id,
        "status": record.status,
        "trigger": record.trigger,
        "started_at": record.started_at.isoformat(),
        "finished_at": None if record.finished_at is None else record.finished_at.isoformat(),
        "duration_seconds": record.duration_seconds,
        "locks_total": record.locks_total,
        "locks_checked": record.locks_checked,
        "counts": dict(record.counts),
        "error": record.error,
    }


def _notify(service: Service, record: DriftRunRecord) -> None:
    """POST the summary to the configured webhook when something needs a human. Never fatal."""
    url = service.settings.webhook_url
    if url is None or not any(record.counts[kind] for kind in ALERT_KINDS):
        return
    body = {
        "event": "lockd.drift",
        "alert_kinds": sorted(k for k in ALERT_KINDS if record.counts[k]),
        **drift_summary(record),
    }
    # Only the origin is logged: a webhook's path or userinfo is often its secret (Slack, Teams).
    origin = httpx.URL(url).copy_with(userinfo=b"", path="/", query=None, fragment=None)
    try:
        response = httpx.post(url, json=body, timeout=_WEBHOOK_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("drift webhook %s failed: %s", origin, type(exc).__name__)
        return
    if response.status_code >= 400:
        log.warning("drift webhook %s answered HTTP %d", origin, response.status_code)
    else:
        log.info("drift webhook delivered for run %s", record.id)


def _stale_before(service: Service) -> datetime:
    return drift_store.stale_cutoff(datetime.now(UTC), service.settings.drift_lease_ttl)


def drift_run(service: Service, run_id: int) -> DriftRunRecord:
    with transaction(service.engine, write=False) as conn:
        record = drift_store.get_run(conn, run_id, stale_before=_stale_before(service))
    if record is None:
        raise NotFound(f"no drift run {run_id}", context={"run_id": run_id})
    return record


def latest_drift_run(service: Service, *, complete_only: bool = True) -> DriftRunRecord | None:
    """The newest complete run (what `drift check` and the dashboard judge by), or the newest of any status."""
    with transaction(service.engine, write=False) as conn:
        return drift_store.latest_run(
            conn, statuses=("complete",) if complete_only else None, stale_before=_stale_before(service)
        )


def drift_runs(service: Service, *, limit: int = 30) -> list[DriftRunRecord]:
    with transaction(service.engine, write=False) as conn:
        return drift_store.list_runs(conn, limit=limit, stale_before=_stale_before(service))


def drift_results(
    service: Service,
    run_id: int,
    *,
    status: str | None = None,
    platform: str | None = None,
    python: str | None = None,
    cuda: str | None = None,
) -> list[DriftResultRecord]:
    with transaction(service.engine, write=False) as conn:
        return drift_store.list_results(
            conn, run_id, status=status, platform=platform, python=python, cuda=cuda
        )


def drift_findings(service: Service, run_id: int) -> list[tuple[str, Finding]]:
    with transaction(service.engine, write=False) as conn:
        return drift_store.run_findings(conn, run_id)


def drift_lock(service: Service, input_digest: str) -> DriftLockView:
    """The latest complete verdict on one stored input, or `NotFound` if no run checked it yet."""
    with transaction(service.engine, write=False) as conn:
        result = drift_store.latest_result(conn, input_digest)
        if result is None:
            raise NotFound(
                f"no drift result for input {input_digest}",
                hint="run `lockd drift run` (or POST /v1/drift/runs) first",
                context={"input_digest": input_digest},
            )
        findings = drift_store.result_findings(conn, result.run_id, input_digest)
        revisions = queries.list_revisions(conn, input_digest)
        run = drift_store.get_run(conn, result.run_id)
    assert run is not None
    return DriftLockView(result, tuple(findings), tuple(revisions), run)
