"""A lock's rendered files as the store keeps them: every format of the table, with its sha256."""

from __future__ import annotations

import hashlib

from lockd.lock import Lock
from lockd.render import FORMATS, render
from lockd.store import LockFileRecord

__all__ = ["render_files"]


def render_files(lock: Lock) -> list[LockFileRecord]:
    """Every format of `FORMATS` rendered from `lock`: byte-identical for the same lock, forever."""
    files = []
    for name, spec in FORMATS.items():
        content = render(lock, name)
        files.append(
            LockFileRecord(lock.digest, name, hashlib.sha256(content).hexdigest(), spec.media_type, content)
        )
    return files
