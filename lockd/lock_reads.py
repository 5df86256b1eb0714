"""The reads of stored locks: revisions, inputs, listings, and rendered files from memory.

Serving a stored lock asks the database nothing when this process has seen it lately: rendered
files and warnings are kept by lock digest in a cache bounded in bytes (written once, never
changed, so never stale); the current revision and the canonical input of an input digest are
kept until the database says something changed (`lockd.store.changes`: LISTEN/NOTIFY on
PostgreSQL, `data_version` on SQLite), so a promotion or refresh made through any replica is
served by every other within `MAX_STALENESS` plus a notification's delivery. The `cached_*`
methods never block: the HTTP layer answers with them on the event loop, and hops to a thread
only when they miss. Reads return `lockd.stored` values, never store rows. A format not stored
with its lock (`Format.eager` False, or added after the lock was stored) is rendered on its first
read and stored then, so it is those bytes forever (the one stored first wins).
`lockd.service.Service` is a `LockReads`: these are its read methods, kept apart from locking.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import Connection, Engine

from lockd.errors import NotFound, StoreUnavailable
from lockd.inputs import LockRequest
from lockd.lock import Lock, LockWarning, accelerator_runtime_of
from lockd.lock_files import render_file
from lockd.memory_cache import BoundedCache
from lockd.render import FORMATS
from lockd.store import LockFileRecord, queries, read, transaction
from lockd.store.changes import FreshCache, watch_for
from lockd.stored import LockFile, LockResult, Revision, StoredInput, StoredLock

__all__ = ["LockReads", "no_lock"]

log = logging.getLogger(__name__)

# Rendered files kept in memory per process, by total size (a torch lock's pylock.toml is ~100 KiB).
_FILE_CACHE_BYTES = 64 * 1024 * 1024
_WARNINGS_CACHED = 10_000


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise NotFound(f"no file {fmt!r}", hint="files: " + ", ".join(FORMATS), context={"file": fmt})


def no_lock(input_digest: str) -> NotFound:
    return NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})


def _render_missing(conn: Connection, lock_digest: str, fmt: str) -> LockFileRecord | None:
    """A format not stored with the lock (rendered when first asked for, or added after the lock
    was stored), rendered from the lock: renderers are pure, so every process renders the same bytes."""
    canonical = queries.get_lock_canonical(conn, lock_digest)
    return None if canonical is None else render_file(Lock.from_json(canonical), fmt)


# A file as read: the record, and whether the store holds it (False: rendered by this read).
_Read = tuple[LockFileRecord, bool]


def _file_size(file: LockFile) -> int:
    return len(file.content)


def _stored_result(input_digest: str, revision: Revision) -> LockResult:
    return LockResult(input_digest=input_digest, revision=revision, created=False, stats=None)


class LockReads:
    """Reads of the stored locks of one database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._files: BoundedCache[tuple[str, str], LockFile] = BoundedCache(
            _FILE_CACHE_BYTES, sizeof=_file_size
        )
        self._warnings: BoundedCache[str, tuple[LockWarning, ...]] = BoundedCache(_WARNINGS_CACHED)
        self._watch = watch_for(engine)
        self._current: FreshCache[str, Revision] = FreshCache(self._watch)
        self._inputs: FreshCache[str, StoredInput] = FreshCache(self._watch)
        self._names: FreshCache[str, str] = FreshCache(self._watch)

    def cached_name_input(self, name: str) -> str | None:
        """The input digest a lock name serves, if this process saw it since the last change."""
        return self._names.get(name)

    def name_input_generation(self) -> int | None:
        """Take before reading a name from the database; give to `remember_name_input`."""
        return self._names.generation()

    def remember_name_input(self, name: str, input_digest: str, generation: int | None) -> None:
        self._names.put(name, input_digest, generation)

    def close_reads(self) -> None:
        """Stop watching the database for changes (the listener thread and its connection)."""
        self._watch.close()

    def current(self, input_digest: str) -> Revision:
        found = self._current.get(input_digest)
        if found is not None:
            return found
        generation = self._current.generation()
        record = read(self.engine, lambda conn: queries.current_revision(conn, input_digest))
        if record is None:
            raise no_lock(input_digest)
        found = Revision.of(record)
        self._current.put(input_digest, found, generation)
        return found

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
            raise no_lock(input_digest)
        return [Revision.of(record) for record in found]

    def stored_input(self, input_digest: str) -> StoredInput:
        found = self._inputs.get(input_digest)
        if found is not None:
            return found
        generation = self._inputs.generation()
        stored = read(self.engine, lambda conn: queries.get_input(conn, input_digest))
        if stored is None:
            raise no_lock(input_digest)
        found = StoredInput.of(stored)
        self._inputs.put(input_digest, found, generation)
        return found

    def cached_stored_input(self, input_digest: str) -> StoredInput | None:
        """The canonical input if this process has it in memory and it is still stored; never blocks."""
        return self._inputs.get(input_digest)

    def lock_file(self, lock_digest: str, fmt: str) -> LockFile:
        _check_format(fmt)
        found = self._files.get((lock_digest, fmt))
        if found is None:
            read_now = read(self.engine, lambda conn: self._read_file(conn, lock_digest, fmt))
            found = None if read_now is None else self._kept(read_now)
        if found is None:
            raise NotFound(f"no lock {lock_digest}", context={"lock_digest": lock_digest})
        return found

    def lock_warnings(self, lock_digest: str) -> tuple[LockWarning, ...]:
        """What the consumer of a stored lock must know (sdist and yanked pins)."""
        found = self.cached_warnings(lock_digest)
        if found is None:
            data = json.loads(self.lock_file(lock_digest, "json").content)
            found = tuple(LockWarning.from_json(w) for w in data.get("warnings", ()))
            self._warnings.put(lock_digest, found)
        return found

    def cached_warnings(self, lock_digest: str) -> tuple[LockWarning, ...] | None:
        """`lock_warnings` if this process has worked them out already; never blocks."""
        return self._warnings.get(lock_digest)

    def cached_file(self, lock_digest: str, fmt: str) -> LockFile | None:
        """The rendered file if this process has it in memory; never blocks."""
        return self._files.get((lock_digest, fmt))

    def cached_current_file(self, input_digest: str, fmt: str) -> tuple[Revision, LockFile] | None:
        """The current revision and its file in `fmt` if both are in memory and fresh; never blocks."""
        current = self._current.get(input_digest)
        if current is None:
            return None
        found = self._files.get((current.lock_digest, fmt))
        return None if found is None else (current, found)

    def current_file(self, input_digest: str, fmt: str) -> tuple[Revision, LockFile]:
        """The current revision of a stored input and its file in `fmt`, in one read (or none)."""
        _check_format(fmt)
        found = self._current_file(input_digest, fmt)
        if found is None:
            raise no_lock(input_digest)
        return found

    def cached_lock_and_file(self, request: LockRequest, fmt: str) -> tuple[LockResult, LockFile] | None:
        """`stored_lock_and_file` if this process can answer it from memory; never blocks."""
        if fmt not in FORMATS:
            return None
        found = self.cached_current_file(request.digest, fmt)
        return None if found is None else (_stored_result(request.digest, found[0]), found[1])

    def stored_lock_and_file(self, request: LockRequest, fmt: str) -> tuple[LockResult, LockFile] | None:
        """The current revision of a stored input and its file in `fmt`, in one read; None if never locked."""
        _check_format(fmt)
        digest = request.digest
        stored = self._current_file(digest, fmt)
        if stored is None:
            return None
        return _stored_result(digest, stored[0]), stored[1]

    def _current_file(self, input_digest: str, fmt: str) -> tuple[Revision, LockFile] | None:
        found = self.cached_current_file(input_digest, fmt)
        if found is not None:
            return found
        generation = self._current.generation()
        read_now = read(self.engine, lambda conn: self._read_current_file(conn, input_digest, fmt))
        if read_now is None:
            return None
        revision, file = read_now
        self._current.put(input_digest, revision, generation)
        return revision, file if isinstance(file, LockFile) else self._kept(file)

    def _read_file(self, conn: Connection, lock_digest: str, fmt: str) -> _Read | None:
        record = queries.get_lock_file(conn, lock_digest, fmt)
        if record is not None:
            return record, True
        rendered = _render_missing(conn, lock_digest, fmt)
        return None if rendered is None else (rendered, False)

    def _kept(self, found: _Read) -> LockFile:
        """The file as this process serves it from now on: a rendered one is stored first."""
        record, stored = found
        if not stored:
            record = self._store_rendered(record)
        file = LockFile.of(record)
        self._files.put((record.lock_digest, record.format), file)
        return file

    def _store_rendered(self, record: LockFileRecord) -> LockFileRecord:
        """Stores a file rendered on a read, so it is these bytes forever; the one stored first wins."""
        try:
            with transaction(self.engine, write=True) as conn:
                if queries.put_lock_file(conn, record):
                    return record
                stored = queries.get_lock_file(conn, record.lock_digest, record.format)
        except StoreUnavailable:
            # A store that takes no write now (read-only, failing over): the rendered bytes are
            # the ones any process renders, so the read is answered; this process keeps them in
            # memory, and another process's first read stores them.
            log.warning(
                "rendered file not stored", extra={"lock_digest": record.lock_digest, "format": record.format}
            )
            return record
        return record if stored is None else stored

    def _read_current_file(
        self, conn: Connection, input_digest: str, fmt: str
    ) -> tuple[Revision, LockFile | _Read] | None:
        current = queries.current_revision(conn, input_digest)
        if current is None:
            return None
        digest = current.lock_digest
        found = self._files.get((digest, fmt)) or self._read_file(conn, digest, fmt)
        if found is None:  # a revision's lock and files are written with it, in one transaction
            raise NotFound(f"no lock {digest}", context={"lock_digest": digest})
        return Revision.of(current), found

    def accelerator_runtimes(self, lock_digests: list[str]) -> dict[str, str]:
        """Lock digest → the GPU runtime a lock without a variant pulls (only locks that pull one)."""
        heads = read(self.engine, lambda conn: queries.lock_heads(conn, lock_digests))
        found = {digest: accelerator_runtime_of(head) for digest, head in heads.items()}
        return {digest: runtime for digest, runtime in found.items() if runtime is not None}

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
