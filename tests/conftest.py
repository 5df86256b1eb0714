"""Shared fixtures: fresh databases on SQLite and PostgreSQL, and live `lockd serve` processes.

- `database_url` (function, parametrised `sqlite` / `postgres`): a fresh, migrated database.
  PostgreSQL databases are cloned from a migrated template made once per session, and the
  whole set is dropped at session end. PostgreSQL is `LOCKD_TEST_POSTGRES_URL` (default
  `postgresql+psycopg://postgres@127.0.0.1:5432/test`); without it the postgres cases skip.
- `lockd_server` (module, parametrised `sqlite` / `postgres`): `python -m lockd serve` as a
  real subprocess on a free loopback port, on a fresh database, pointed at the fixture index.
  Has `.url`, `.tokens` (`read`, `lock`, `admin`), `.client()`, `.restart()`, `.env`.
- `start_lockd` (function): a factory for servers with custom `LOCKD_*` settings, stopped
  after the test: `start_lockd(database_url, LOCKD_RESOLVE_TIMEOUT="0.5")`.
- `unique_requirements` (function): a requirements.in no other test uses (a distinct input
  digest) that resolves instantly against the fixture index.
- `drifted` (module): a live server whose store holds one lock per finding kind after two
  drift runs, for the dashboard tests.

The helpers these fixtures are built from, and that tests import, live in tests/support.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fixtures.build import Catalog
from fixtures.index import FixtureIndex
from fixtures.served_index import ServedIndex, WatchedIndex
from lockd.service import Service
from lockd.store import migrate, open_engine
from tests.support import (
    XSS,
    LockdServer,
    PostgresDatabases,
    StartLockd,
    advisory_database,
    fresh_database,
    lock_inputs,
    mutate,
    server_env,
)

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")


def _postgres_admin_url() -> str:
    return os.environ.get("LOCKD_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


@pytest.fixture(scope="session", autouse=True)
def _user_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`lockd lock` run by a test keeps its cache here, never in the user's ~/.cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    url = _postgres_admin_url()
    try:
        databases = PostgresDatabases(url)
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {url}: {type(exc).__name__}")
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(backend, request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def lockd_server(
    request: pytest.FixtureRequest, fixture_index: WatchedIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LockdServer]:
    """A live server on a fresh database of each backend, shared by the tests of one module."""
    tmp = tmp_path_factory.mktemp(f"lockd-{request.param}")
    url = fresh_database(str(request.param), request, tmp)
    server = LockdServer(server_env(url, fixture_index), tmp / "server.log")
    server.create_tokens()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_lockd(fixture_index: WatchedIndex, tmp_path: Path) -> Iterator[StartLockd]:
    """Start servers with custom settings: `start_lockd(database_url, workers=1, index=…, LOCKD_X="…")`."""
    started: list[LockdServer] = []

    def start(
        database_url: str,
        *,
        workers: int = 1,
        index: ServedIndex | None = None,
        tokens: bool = True,
        **overrides: str,
    ) -> LockdServer:
        env = server_env(database_url, index or fixture_index, **overrides)
        server = LockdServer(env, tmp_path / f"server-{len(started)}.log", workers=workers)
        if tokens:
            server.create_tokens()
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def unique_requirements() -> str:
    """A requirements.in with an input digest of its own that resolves to lockd-fx-plain 1.1."""
    return f"lockd-fx-plain!=0.0.{uuid.uuid4().int % 10**9}\n"


@pytest.fixture(scope="module")
def drifted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _fixture_catalog: Catalog
) -> Iterator[tuple[LockdServer, dict[str, str]]]:
    """A live server whose store holds one lock per finding kind, after two drift runs (the
    second after an advisory against the `vulnerable` lock's pin was published)."""

    catalog = Catalog(list(_fixture_catalog.artifacts), _fixture_catalog.blob_dir, _fixture_catalog.digest)
    index = FixtureIndex(catalog=catalog).start()
    tmp = tmp_path_factory.mktemp("dashboard")
    advisories = advisory_database(tmp / "advisories")
    env = server_env(fresh_database("sqlite", request, tmp), index, LOCKD_ADVISORIES_DIR=str(advisories))
    server = LockdServer(env, tmp / "server.log")
    server.create_tokens()
    server.start()
    try:
        service = Service.open(server.settings())
        try:
            digests = lock_inputs(service)
        finally:
            service.close()
        with server.client("admin") as admin:
            assert admin.post("/v1/drift/runs", params={"wait": "true"}).status_code == 200
            mutate(index, yank_reason=XSS, advisories=advisories)
            answer = admin.post("/v1/drift/runs", params={"wait": "true"})
            assert answer.status_code == 200, answer.text
        yield server, digests
    finally:
        server.stop()
        index.stop()
