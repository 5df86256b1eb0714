"""Migrations build the schema the models describe, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lockd.store import alembic_config, head_revision, migrate, open_engine, schema_revision
from lockd.store.schema import metadata
from tests.support import fresh_database


def test_models_match_migrations(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = fresh_database(backend, request, tmp_path, migrated=False)
    engine = open_engine(url)
    try:
        assert schema_revision(engine) is None
        assert migrate(engine) == head_revision()
        assert schema_revision(engine) == head_revision()
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = fresh_database(backend, request, tmp_path, migrated=False)
    engine = open_engine(url)
    try:
        migrate(engine)
        config = alembic_config(url)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert schema_revision(engine) is None
        assert migrate(engine) == head_revision()
        migrate(engine)  # idempotent
    finally:
        engine.dispose()
