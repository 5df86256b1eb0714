"""The reads of stored locks: revisions, inputs, listings, and rendered files from memory.

Serving a stored lock is one read transaction: the current revision, and the rendered file
from a process-local cache bounded in bytes (a lock digest's files are written once and never
change, so the cache is never stale). Reads return `lockd.stored` values, never store rows.
`lockd.service.Service` is a `LockReads`: these are its read methods, kept apart from locking.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from lockd.errors import NotFound
from lockd.inputs import LockRequest
from lockd.lock import accelerator_runtime_of
from lockd.memory_cache import BoundedCache
from lockd.render import FORMATS
from lockd.store import queries, read
from lockd.stored import LockFile, LockResult, Revision, StoredInput, StoredLock

__all__ = ["LockReads", "no_lock"]

# Rendered files kept in memory per process, by total size (a torch lock's pylock.toml is ~100 KiB).
_FILE_CACHE_BYTES = 64 * 1024 * 1024


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise NotFound(f"no file {fmt!r}", hint="files: " + ", ".join(FORMATS), context={"file": fmt})


def no_lock(input_digest: str) -> NotFound:
    return NotFound(f"no lock for input {input_digest}", context={"input_digest": input_digest})


def _file_size(file: LockFile) -> int:
    return len(file.content)


class LockReads:
    """Reads of the stored locks of one database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._files: BoundedCache[tuple[str, str], LockFile] = BoundedCache(
            _FILE_CACHE_BYTES, sizeof=_file_size
        )

    def current(self, input_digest: str) -> Revision:
        found = read(self.engine, lambda conn: queries.current_revision(conn, input_digest))
        if found is None:
            raise no_lock(input_digest)
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
            raise no_lock(input_digest)
        return [Revision.of(record) for record in found]

    def stored_input(self, input_digest: str) -> StoredInput:
        stored = read(self.engine, lambda conn: queries.get_input(conn, input_digest))
        if stored is None:
            raise no_lock(input_digest)
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
            raise no_lock(input_digest)
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
        record = queries.get_lock_file(conn, lock_digest, fmt)
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
