"""How long stored text may be: the column sizes of the store, known below every layer.

The store's tables (`lockd.store.schema`) declare their columns with these sizes, and intake
(`lockd.http`, `lockd.target`) refuses longer values before any work starts. Without the shared
numbers a value PostgreSQL's `VARCHAR(n)` refuses was found only when the lock was stored,
after resolving (a 503), while SQLite, which does not enforce `n`, stored it: the same request
must get the same 422 on both.
"""

from __future__ import annotations

__all__ = [
    "CUDA_CHARS",
    "PACKAGE_NAME_CHARS",
    "PLATFORM_CHARS",
    "PYTHON_CHARS",
    "TOKEN_NAME_CHARS",
    "VERSION_CHARS",
]

PLATFORM_CHARS = 32
PYTHON_CHARS = 16
CUDA_CHARS = 16
TOKEN_NAME_CHARS = 200
PACKAGE_NAME_CHARS = 200
VERSION_CHARS = 100
