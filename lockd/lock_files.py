"""A lock's rendered files as the store keeps them, each with its sha256.

The eager formats (`Format.eager`: requirements.txt, lock.json) are rendered when
the lock is stored; the others when first asked for (`lockd.lock_reads`), then stored too. Renderers
are pure, so either way a lock's file is the same bytes, and once stored it is served as stored.
"""

from __future__ import annotations

import hashlib

from lockd.lock import Lock
from lockd.render import FORMATS, render
from lockd.store import LockFileRecord

__all__ = ["render_file", "render_files"]


def render_files(lock: Lock) -> list[LockFileRecord]:
    """The eager formats of `FORMATS` rendered from `lock`: byte-identical for the same lock, forever."""
    return [render_file(lock, name) for name, spec in FORMATS.items() if spec.eager]


def render_file(lock: Lock, fmt: str) -> LockFileRecord:
    """`lock` in format `fmt`, as a record the store keeps."""
    content = render(lock, fmt)
    return LockFileRecord(
        lock.digest, fmt, hashlib.sha256(content).hexdigest(), FORMATS[fmt].media_type, content
    )
