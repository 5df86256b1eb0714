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
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from lockd.config import Settings
from lockd.service import Service
from lockd.store import migrate, open_engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")
_counter = itertools.count(1)


def _postgres_admin_url() -> str:
    return os.environ.get("LOCKD_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


class PostgresDatabases:
    """Creates databases for one session from a migrated template, and drops them all at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"lockd_t{uuid.uuid4().hex[:10]}"
        self._admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.template = f"{self.prefix}_template"
        self._created: list[str] = []
        self._execute(f'CREATE DATABASE "{self.template}"')
        self._created.append(self.template)
        engine = open_engine(_with_database(admin_url, self.template))
        migrate(engine)
        engine.dispose()

    def _execute(self, statement: str) -> None:
        with self._admin.connect() as conn:
            conn.exec_driver_sql(statement)

    def create(self, *, migrated: bool = True) -> str:
        name = f"{self.prefix}_{next(_counter)}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        self._execute(f'CREATE DATABASE "{name}"{template}')
        self._created.append(name)
        return _with_database(self.admin_url, name)

    def drop_all(self) -> None:
        for name in reversed(self._created):
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin.dispose()


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


def fresh_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool = True) -> str:
    """A new database URL on `backend` (migrated unless asked otherwise)."""
    if backend == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        return databases.create(migrated=migrated)
    path = tmp_path / f"lockd-{next(_counter)}.db"
    if migrated:
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(backend, request, tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for a test's own loopback server, kept out of pytest's output."""

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@contextmanager
def loopback_http(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server for `handler` on a free loopback port; yields `127.0.0.1:PORT`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class LockdServer:
    """`python -m lockd serve` in a subprocess, with its environment and tokens."""

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 1) -> None:
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return self.env["LOCKD_DATABASE_URL"]

    def settings(self) -> Settings:
        return Settings(**{k.removeprefix("LOCKD_").lower(): v for k, v in self.env.items() if k.startswith("LOCKD_")})

    def start(self, timeout: float = 30.0) -> LockdServer:
        command = [sys.executable, "-m", "lockd", "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lockd serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"lockd serve did not start in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> LockdServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def create_tokens(self) -> None:
        service = Service.open(self.settings())
        try:
            for scope in ("read", "lock", "admin"):
                self.tokens[scope] = service.tokens.create(name=f"test-{scope}", scope=scope)
        finally:
            service.close()

    def client(self, scope: str | None = "lock", **kwargs: Any) -> httpx.Client:
        headers = {} if scope is None else {"Authorization": f"Bearer {self.tokens[scope]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)


def server_env(database_url: str, index: Any, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}
    env.update(
        {
            "LOCKD_DATABASE_URL": database_url,
            "LOCKD_INDEX_URL": index.pypi_url,
            "LOCKD_PYTORCH_INDEX_URL": index.pytorch_base,
            "LOCKD_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(overrides)
    return env


@pytest.fixture(scope="module", params=BACKENDS)
def lockd_server(
    request: pytest.FixtureRequest, fixture_index: Any, tmp_path_factory: pytest.TempPathFactory
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
def start_lockd(fixture_index: Any, tmp_path: Path) -> Iterator[Callable[..., LockdServer]]:
    """Start servers with custom settings: `start_lockd(database_url, workers=1, index=…, LOCKD_X="…")`."""
    started: list[LockdServer] = []

    def start(
        database_url: str, *, workers: int = 1, index: Any = None, tokens: bool = True, **overrides: str
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


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the Prometheus samples `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        if sample_name != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total
