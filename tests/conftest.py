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
- `pypi_view` (module): the `/simple/` URL of a loopback view of real PyPI that serves every
  tool the same page for a project, fetched once; skips when PyPI is unreachable.
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
from tests.pypi_view import reachable_pypi_view
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
# Seconds each module (5 s or more) took in one `.ci/run` (`-n 2 --dist loadfile`, 2,318 tests in
# 753 s on a 2-core machine, 6 Dec 2026; `--junitxml` times summed per module), for the order
# below; test_real_pypi_targets took 308 s there, before it ran its cases four at a time (114 s
# alone after, 196 s before), so its figure is an estimate. A module missing here is estimated
# from its test count; stale figures only cost wall time, never coverage.
MODULE_SECONDS = {
    "tests/test_real_pypi_targets.py": 170,
    "tests/test_docker.py": 138,
    "tests/test_load.py": 136,
    "tests/test_faults.py": 59,
    "tests/test_kill.py": 51,
    "tests/test_differential.py": 48,
    "tests/test_http_concurrency.py": 47,
    "tests/test_security.py": 46,
    "tests/test_story_advisories.py": 39,
    "tests/test_drift.py": 35,
    "tests/test_http_errors.py": 29,
    "tests/test_serving_freshness.py": 24,
    "tests/test_dashboard.py": 22,
    "tests/test_install.py": 21,
    "tests/test_bad_input.py": 20,
    "tests/test_service.py": 16,
    "tests/test_http_locks.py": 16,
    "tests/test_hostile_fixture.py": 13,
    "tests/test_cli_cache.py": 13,
    "tests/index/test_client.py": 13,
    "tests/test_resolver_rounds.py": 13,
    "tests/test_differential_targets.py": 13,
    "tests/test_cli.py": 12,
    "tests/test_differential_variants.py": 11,
    "tests/test_hostile_index.py": 11,
    "tests/test_http_names.py": 10,
    "tests/index/test_hostile_client.py": 10,
    "tests/test_names.py": 10,
    "tests/test_leases.py": 10,
    "tests/test_api_fuzz.py": 9,
    "tests/test_real_pypi.py": 9,
    "tests/test_advisories_osv_api.py": 9,
    "tests/index/test_page_worker.py": 9,
    "tests/test_pypi_view.py": 8,
    "tests/test_properties.py": 8,
    "tests/test_dashboard_browser.py": 7,
    "tests/test_bench_smoke.py": 7,
    "tests/test_dashboard_names_browser.py": 7,
    "tests/test_resolver.py": 7,
    "tests/test_real_pypi_stacks.py": 7,
    "tests/test_story_names.py": 7,
    "tests/test_drift_replicas.py": 7,
    "tests/test_fixture_index.py": 6,
    "tests/test_minimal_churn.py": 6,
    "tests/index/test_sdist_worker.py": 6,
    "tests/test_tokens.py": 6,
    "tests/index/test_network.py": 6,
    "tests/test_http_tokens.py": 6,
    "tests/test_advisories.py": 6,
    "tests/test_http_targets.py": 6,
    "tests/test_drift_webhook.py": 6,
    "tests/test_http_openapi.py": 6,
    "tests/test_prefetch_walk.py": 5,
    "tests/test_explain.py": 5,
}
# The 78 modules not listed took 104 s for 1,399 tests in that run; the cap keeps a large table
# of parametrised pure-function cases from outranking the server modules above.
SECONDS_PER_TEST = 0.1
UNLISTED_SECONDS_CAP = 5.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest modules first (longest-processing-time order): with `--dist loadfile` a
    worker runs whole modules, and one long module started last would run alone at the end.
    Needs `--no-loadscope-reorder` (pyproject addopts), which stops xdist ordering modules by
    their test count instead. The order within a module is left as pytest made it."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.location[0]] = counts.get(item.location[0], 0) + 1

    def cost(item: pytest.Item) -> tuple[float, str]:
        module = item.location[0]
        estimate = min(counts[module] * SECONDS_PER_TEST, UNLISTED_SECONDS_CAP)
        return -MODULE_SECONDS.get(module, estimate), module

    items.sort(key=cost)


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


@pytest.fixture(scope="module")
def pypi_view() -> Iterator[str]:
    """The `/simple/` URL of one view of real PyPI shared by lockd and its peers in a module
    (tests/pypi_view.py says why); skips the module with the reason when PyPI is unreachable."""
    with reachable_pypi_view() as url:
        yield url


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
