"""Readiness: whether this process can serve, as `/readyz` reports it to a load balancer.

Ready means the database answers, its schema is at the head migration this code expects, it
takes a write (a read-only SQLite file, a PostgreSQL session with
`default_transaction_read_only` or a standby all answer reads and fail every lock), and, for
SQLite, the disk under it has at least `min_free_bytes` free: a full disk fails writes too,
and an update of no rows would not notice.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from lockd.errors import LockdError
from lockd.store import check_writable, head_revision, schema_revision

__all__ = ["Readiness", "check_readiness"]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    ready: bool
    database: bool
    schema: str | None
    head: str
    detail: str
    writable: bool | None = None  # None: not checked (the database or its schema failed first)
    disk_free_bytes: int | None = None  # None: no local database file


def check_readiness(engine: Engine, *, data_dir: Path | None = None, min_free_bytes: int = 0) -> Readiness:
    """Whether `engine`'s database can serve; `data_dir` is the SQLite file's directory, if any."""
    head = head_revision()
    try:
        current = schema_revision(engine)
    except LockdError as exc:
        return Readiness(ready=False, database=False, schema=None, head=head, detail=exc.message)
    if current != head:
        detail = f"schema at {current}, head is {head}: run `lockd migrate`"
        return Readiness(ready=False, database=True, schema=current, head=head, detail=detail)
    try:
        check_writable(engine)
    except LockdError as exc:
        return Readiness(
            ready=False, database=True, schema=current, head=head, detail=exc.message, writable=False
        )
    free = None if data_dir is None else _free_bytes(data_dir)
    if free is not None and free < min_free_bytes:
        detail = (
            f"{free // _MIB} MiB free on the disk of {data_dir}, "
            f"below the {min_free_bytes // _MIB} MiB required (LOCKD_MIN_FREE_DISK_MB)"
        )
        return Readiness(
            ready=False,
            database=True,
            schema=current,
            head=head,
            detail=detail,
            writable=True,
            disk_free_bytes=free,
        )
    return Readiness(
        ready=True, database=True, schema=current, head=head, detail="ok", writable=True, disk_free_bytes=free
    )


def _free_bytes(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0  # a directory that cannot be read cannot be written either
