"""Storage of inputs, locks, rendered files, revisions, tokens and caches (SQLAlchemy 2.0 Core).

`schema` holds the tables (Alembic migrations in `migrations/` match them), `queries` the
reads and writes of inputs, locks, revisions and tokens over a caller-owned connection,
`leases` the single-flight lease rows, `drift` drift runs and findings, `database` engines,
transactions and migrations, `caches` the database-backed index caches. This package never commits on its
own: `lockd.service` decides transaction boundaries.
"""

from __future__ import annotations

from lockd.store.caches import DatabaseHashCache, DatabaseMetadataCache
from lockd.store.database import (
    alembic_config,
    check_writable,
    head_revision,
    migrate,
    migrations_dir,
    open_engine,
    read,
    schema_revision,
    transaction,
)
from lockd.store.queries import (
    InputRecord,
    LockFileRecord,
    LockSummary,
    RevisionRecord,
    TokenRecord,
)

__all__ = [
    "DatabaseHashCache",
    "DatabaseMetadataCache",
    "InputRecord",
    "LockFileRecord",
    "LockSummary",
    "RevisionRecord",
    "TokenRecord",
    "alembic_config",
    "check_writable",
    "head_revision",
    "migrate",
    "migrations_dir",
    "open_engine",
    "read",
    "schema_revision",
    "transaction",
]
