"""Alembic environment: online migrations over a connection lockd hands in, or a URL.

The URL comes from, in order: a connection in `config.attributes` (`lockd migrate`), the
`sqlalchemy.url` option, or `LOCKD_DATABASE_URL` (the `alembic` command line).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from lockd.config import DEFAULT_DATABASE_URL
from lockd.store.database import open_engine
from lockd.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("LOCKD_DATABASE_URL", DEFAULT_DATABASE_URL)
    engine = open_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("lockd migrations run online only: use `lockd migrate`")
run_migrations_online()
