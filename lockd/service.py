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
first, on the event loop, and goes to a thread only when they miss.

Serving a stored lock is one read transaction: the current revision, and the rendered file
from a process-local cache bounded in bytes (a lock digest's files are written once and never
change, so the cache is never stale). Reads return `lockd.stored` values, never store rows. Tokens are `lockd.tokens`, readiness `lockd.readiness`, drift runs `lockd.drift_runs`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine

from lockd.advisory_check import AdvisoryCheck
from lockd.config import Settings
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest
from lockd.leases import HeldLease, Leases
from lockd.lock import Lock
from lockd.memory_cache import BoundedCache
from lockd.readiness import Readiness, check_readiness
from lockd.render import FORMATS, render
from lockd.standalone import ResolveStats, build_request, index_client, timed_resolve
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
from lockd.stored import LockFile, Revision, StoredInput, StoredLock
from lockd.tokens import Tokens

__all__ = ["LockResult", "RefreshResult", "Service"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Rendered files kept in memory per process, by total size (a torch lock's pylock.toml is ~100 KiB).
_FILE_CACHE_BYTES = 64 * 1024 * 1024


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
class RefreshResult:
    input_digest: str
    revision: Revision
    previous: Revision  # the current revision when the refresh began
    stats: ResolveStats | None  # None when this call shared a refresh that was already running

    @property
    def changed(self) -> bool:
        return self.revision.n != self.previous.n


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise NotFound(f"no file {fmt!r}", hint="files: " + ", ".join(FORMATS), context={"file": fmt})


def _no_lock(input_digest: str) -> NotFound:
    return NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})


def _render_all(lock: Lock) -> list[LockFileRecord]:
    files = []
    for name, spec in FORMATS.items():
        content = render(lock, name)
        files.append(
            LockFileRecord(lock.digest, name, hashlib.sha256(content).hexdigest(), spec.media_type, content)
        )
    return files


def _render_later_format(conn: Connection, lock_digest: str, fmt: str) -> LockFileRecord | None:
    """A format added after this lock was stored, rendered from the lock (renderers are pure, so
    every process renders the same bytes); kept in memory, never written on a read."""
    canonical = queries.get_lock_canonical(conn, lock_digest)
    if canonical is None:
        return None
    content = render(Lock.from_json(canonical), fmt)
    sha256 = hashlib.sha256(content).hexdigest()
    return LockFileRecord(lock_digest, fmt, sha256, FORMATS[fmt].media_type, content)


def _file_size(file: LockFile) -> int:
    return len(file.content)


class Service:
    """lockd's lock operations over one database and one shared index client. Thread-safe."""

    def __init__(self, settings: Settings, engine: Engine, index: IndexClient) -> None:
        self.settings = settings
        self.engine = engine
        self.index = index
        self.metadata_cache: DatabaseMetadataCache | None = None
        self.tokens = Tokens(engine)
        # Told of every resolution this process runs: (outcome, seconds). The outcome is
        # `created`, `refreshed`, `unchanged` or an error code. Set by the HTTP layer's metrics.
        self.on_resolution: Callable[[str, float], None] | None = None
        self._files: BoundedCache[tuple[str, str], LockFile] = BoundedCache(
            _FILE_CACHE_BYTES, sizeof=_file_size
        )
        self._leases = Leases(engine, "resolution", ttl=settings.lease_ttl)
        self.advisories = AdvisoryCheck.from_settings(settings)

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
        self.advisories.close()
        self.index.close()
        self.engine.dispose()

    def resolve_in_budget(self, request: LockRequest, index: IndexClient) -> tuple[Lock, ResolveStats]:
        """Resolve within the time budget, then write the metadata it fetched to the database."""
        try:
            return timed_resolve(request, index, self.settings.resolve_timeout)
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
        return check_readiness(self.engine)

    # -- locking --------------------------------------------------------------------------

    def build_request(
        self,
        *,
        requirements: str,
        target: Mapping[str, object],
        constraints: str = "",
        options: LockOptions | None = None,
    ) -> LockRequest:
        return build_request(
            self.settings, requirements=requirements, target=target, constraints=constraints, options=options
        )

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
        request: LockRequest,
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
                lock, stats = self.resolve_in_budget(request, self.index)
                files = _render_all(lock)
                if screen:
                    self.advisories.screen(lock)
            with transaction(self.engine, write=True) as conn:
                stored = store(conn, lock, files)
                lease.release(conn)
        except LockdError as exc:
            lease.fail(exc)
            self._observe(exc.code, started)
            raise
        except BaseException:
            lease.release()
            raise
        return stored, lock, stats, started

    def lock(self, request: LockRequest) -> LockResult:
        """The current revision of `request`'s input, resolving it first if it was never locked."""
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
            self._put_lock(conn, lock, files, now)
            created = queries.put_revision(
                conn, input_digest=digest, n=1, lock_digest=lock.digest, reason="created", now=now
            )
            return created, True

        (current, created), lock, stats, started = self._resolve_and_store(turn, request, store, screen=True)
        self._observe("created" if created else "discarded", started)
        log.info(
            "resolved",
            extra={"input_digest": digest, "lock_digest": lock.digest, "seconds": round(stats.seconds, 3)},
        )
        return LockResult(input_digest=digest, revision=Revision.of(current), created=created, stats=stats)

    def _observe(self, outcome: str, started: float) -> None:
        if self.on_resolution is not None:
            self.on_resolution(outcome, time.monotonic() - started)

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
        """Re-resolve a stored input; append a revision only if the lock changed.

        A refresh of the same input already running is shared: this call waits for it and
        answers with its outcome (or its error) instead of resolving again.
        """
        with transaction(self.engine, write=False) as conn:
            stored = queries.get_input(conn, input_digest)
            arrived = queries.current_revision(conn, input_digest)
        if stored is None or arrived is None:
            raise _no_lock(input_digest)
        request = LockRequest.from_json(stored.canonical)
        turn = self._take_turn(
            input_digest,
            lambda conn, released: queries.current_revision(conn, input_digest) if released else None,
        )
        if isinstance(turn, Revision):
            return RefreshResult(
                input_digest=input_digest, revision=turn, previous=Revision.of(arrived), stats=None
            )

        def store(
            conn: Connection, lock: Lock, files: list[LockFileRecord]
        ) -> tuple[RevisionRecord, RevisionRecord]:
            previous = queries.current_revision(conn, input_digest)
            assert previous is not None  # an input is stored with its first revision
            if previous.lock_digest == lock.digest:
                return previous, previous
            now, n = datetime.now(UTC), previous.n + 1
            self._put_lock(conn, lock, files, now)
            current = queries.put_revision(
                conn, input_digest=input_digest, n=n, lock_digest=lock.digest, reason="refresh", now=now
            )
            return current, previous

        (current, previous), _lock, stats, started = self._resolve_and_store(turn, request, store)
        self._observe("refreshed" if current.n != previous.n else "unchanged", started)
        revision, before = Revision.of(current), Revision.of(previous)
        return RefreshResult(input_digest=input_digest, revision=revision, previous=before, stats=stats)

    # -- reads ----------------------------------------------------------------------------

    def current(self, input_digest: str) -> Revision:
        found = read(self.engine, lambda conn: queries.current_revision(conn, input_digest))
        if found is None:
            raise _no_lock(input_digest)
        return Revision.of(found)

    def revision(self, input_digest: str, n: int) -> Revision:
        found = read(self.engine, lambda conn: queries.revision(conn, input_digest, n))
        if found is None:
            raise NotFound(
                f"input {input_digest} has no revision {n}",
                context={"input_digest": input_digest, "revision": n},
            )
        return Revision.of(found)

    def revisions(self, input_digest: str) -> list[Revision]:
        found = read(self.engine, lambda conn: queries.list_revisions(conn, input_digest))
        if not found:
            raise _no_lock(input_digest)
        return [Revision.of(record) for record in found]

    def stored_input(self, input_digest: str) -> StoredInput:
        stored = read(self.engine, lambda conn: queries.get_input(conn, input_digest))
        if stored is None:
            raise _no_lock(input_digest)
        return StoredInput.of(stored)

    def lock_file(self, lock_digest: str, fmt: str) -> LockFile:
        _check_format(fmt)
        found = self._files.get((lock_digest, fmt))
        if found is None:
            found = read(self.engine, lambda conn: self._read_file(conn, lock_digest, fmt))
        if found is None:
            raise NotFound(f"no lock {lock_digest}", context={"lock_digest": lock_digest})
        return found

    def cached_file(self, lock_digest: str, fmt: str) -> LockFile | None:
        """The rendered file if this process has it in memory; never blocks."""
        return self._files.get((lock_digest, fmt))

    def current_file(self, input_digest: str, fmt: str) -> tuple[Revision, LockFile]:
        """The current revision of a stored input and its file in `fmt`, in one read."""
        _check_format(fmt)
        found = read(self.engine, lambda conn: self._read_current_file(conn, input_digest, fmt))
        if found is None:
            raise _no_lock(input_digest)
        return found

    def stored_lock_and_file(self, request: LockRequest, fmt: str) -> tuple[LockResult, LockFile] | None:
        """The current revision of a stored input and its file in `fmt`, in one read; None if never locked."""
        _check_format(fmt)
        digest = request.digest
        stored = read(self.engine, lambda conn: self._read_current_file(conn, digest, fmt))
        if stored is None:
            return None
        return LockResult(input_digest=digest, revision=stored[0], created=False, stats=None), stored[1]

    def _read_file(self, conn: Connection, lock_digest: str, fmt: str) -> LockFile | None:
        record = queries.get_lock_file(conn, lock_digest, fmt) or _render_later_format(conn, lock_digest, fmt)
        if record is None:
            return None
        found = LockFile.of(record)
        self._files.put((lock_digest, fmt), found)
        return found

    def _read_current_file(
        self, conn: Connection, input_digest: str, fmt: str
    ) -> tuple[Revision, LockFile] | None:
        current = queries.current_revision(conn, input_digest)
        if current is None:
            return None
        digest = current.lock_digest
        found = self._files.get((digest, fmt)) or self._read_file(conn, digest, fmt)
        if found is None:  # a revision's lock and files are written with it, in one transaction
            raise NotFound(f"no lock {digest}", context={"lock_digest": digest})
        return Revision.of(current), found

    def list_locks(
        self,
        *,
        limit: int,
        after: str | None = None,
        platform: str | None = None,
        python: str | None = None,
        cuda: str | None = None,
        package: str | None = None,
    ) -> list[StoredLock]:
        found = read(
            self.engine,
            lambda conn: queries.list_locks(
                conn, limit=limit, after=after, platform=platform, python=python, cuda=cuda, package=package
            ),
        )
        return [StoredLock.of(summary) for summary in found]
