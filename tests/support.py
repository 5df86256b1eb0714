"""What more than one test module uses: live servers, fresh databases, loopback HTTP, problem and
row checks, the drift scenario, and `wait_until`, the one way a test waits for something to happen.

Fixtures stay in conftest.py (which builds them from this module); test modules import these
names from here, never from conftest.py or from each other.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st
from packaging.utils import NormalizedName

from fixtures.served_index import ControlledIndex, ServedIndex, WatchedIndex
from lockd.config import Settings, load_settings
from lockd.index import IndexClient, WorkerPool
from lockd.index.connections import ConnectionSlots
from lockd.index.fetcher import Fetcher, request_to
from lockd.index.urls import parse_request_url
from lockd.index.wire import Response
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.resolver import ResolveStats, timed_resolve
from lockd.routing import plan_for
from lockd.sandbox_builds import metadata_builder_for
from lockd.service import Service
from lockd.simple import DistFile, ProjectPage
from lockd.store import migrate, open_engine
from lockd.store.schema import metadata
from lockd.target import Target

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FX_ADVISORY",
    "PROBLEM",
    "ROOT",
    "SCENARIO",
    "XSS",
    "LockdServer",
    "PostgresDatabases",
    "QuietHandler",
    "StartLockd",
    "advisory_database",
    "assert_problem",
    "child_pids",
    "files_of",
    "free_port",
    "fresh_database",
    "lock_inputs",
    "loopback_http",
    "metric_value",
    "mutate",
    "publish_advisory",
    "request_for",
    "resolve_offline",
    "row_counts",
    "server_env",
    "wait_until",
]

_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
_TARGET = {"platform": "linux_x86_64", "python": "3.11"}
XSS = '<script>alert("x")</script><b>bold</b>'
# Debian's chromium, driven by Playwright in the browser tests.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_counter = itertools.count(1)
# Connections dropping a session's databases at once (PostgreSQL's default limit is 100).
_DROP_CONNECTIONS = 24


def wait_until(
    condition: Callable[[], _T], timeout: float, message: str | Callable[[], str], *, interval: float = 0.05
) -> _T:
    """Call `condition` until it returns something truthy, and return that; fail the test with
    `message` (a callable is asked only then, e.g. for a log tail) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval)


# -- databases ------------------------------------------------------------------------------


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
        # Each DROP DATABASE waits for a checkpoint (seconds each on a busy disk); concurrent
        # drops share one, so a session's few hundred databases go in seconds, not minutes.
        clones, template = self._created[1:], self._created[:1]
        for batch in (clones, template):
            with ThreadPoolExecutor(max_workers=_DROP_CONNECTIONS) as pool:
                list(pool.map(self._drop, batch))
        self._admin.dispose()

    def _drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool = True
) -> str:
    """A new database URL on `backend` (migrated unless asked otherwise)."""
    if backend == "postgres":
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        return databases.create(migrated=migrated)
    path = tmp_path / f"lockd-{next(_counter)}.db"
    if migrated:
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
    return f"sqlite:///{path}"


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for a test's own loopback server, kept out of pytest's output."""

    def send_body(self, status: int, content_type: str, body: bytes) -> None:
        """A whole answer: status, type, length and body."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def child_pids() -> set[int]:
    """This process's child processes still alive (Linux); other fixtures' servers among them."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue  # a thread that ended meanwhile
    return found


@contextmanager
def loopback_http(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server for `handler` on a free loopback port; yields `127.0.0.1:PORT`."""
    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as address:
        yield address


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """`server` answering on a thread of its own until the block ends; yields `127.0.0.1:PORT`."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def loopback_https(
    handler: Callable[..., BaseHTTPRequestHandler], directory: Path
) -> Iterator[tuple[str, Path]]:
    """`loopback_http` over TLS, with a self-signed certificate for 127.0.0.1 written in `directory`;
    yields `127.0.0.1:PORT` and the certificate's file (a client trusting it trusts the server)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    with _serving(server) as address:
        yield address, cert


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
        return load_settings(
            **{k.removeprefix("LOCKD_").lower(): v for k, v in self.env.items() if k.startswith("LOCKD_")}
        )

    def start(self, timeout: float = 30.0) -> LockdServer:
        command = [
            sys.executable,
            "-m",
            "lockd",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
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


class StartLockd(Protocol):
    """The `start_lockd` fixture: start a server on `database_url` with these `LOCKD_*` overrides."""

    def __call__(
        self,
        database_url: str,
        *,
        workers: int = 1,
        index: ServedIndex | None = None,
        tokens: bool = True,
        **overrides: str,
    ) -> LockdServer: ...


def server_env(database_url: str, index: ServedIndex, **overrides: str) -> dict[str, str]:
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


# -- what a request left behind ----------------------------------------------------------------


def row_counts(database_url: str) -> dict[str, int]:
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"]
    return body


# -- the drift scenario: one stored lock per finding kind ------------------------------------

# One small input per finding kind; the mutations below touch disjoint projects.
SCENARIO = {
    "current": "lockd-fx-markers",
    "outdated": "lockd-fx-pre",
    "yanked": "lockd-fx-plain",
    "missing": "lockd-fx-speedups",
    "tampered": "lockd-fx-conflict-c",
    "unresolvable": "lockd-fx-conflict-a",
    "vulnerable": "lockd-fx-pyreq",
}
# A synthetic OSV record against the vulnerable lock's pin (lockd-fx-pyreq 1.0 on Python 3.11).
FX_ADVISORY: dict[str, Any] = {
    "id": "LOCKD-FX-2026-1",
    "aliases": ["CVE-2099-0001"],
    "summary": "lockd-fx-pyreq before 2.0 runs code from a crafted requirement",
    "details": "A test advisory for the fixture index.",
    "modified": "2026-12-01T00:00:00Z",
    "published": "2026-12-01T00:00:00Z",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "lockd-fx-pyreq"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }
    ],
}
_UNRELATED_ADVISORY = ROOT / "fixtures" / "advisories" / "vulns" / "requests" / "PYSEC-2023-74.yaml"


def advisory_database(directory: Path) -> Path:
    """An advisory directory holding one real record that no fixture lock pins: checked, not empty."""
    (directory / "requests").mkdir(parents=True, exist_ok=True)
    shutil.copy(_UNRELATED_ADVISORY, directory / "requests" / _UNRELATED_ADVISORY.name)
    return directory


def publish_advisory(directory: Path, record: dict[str, Any] = FX_ADVISORY) -> None:
    """What an operator's sync of the advisory database does: a new OSV file appears."""
    name = record["affected"][0]["package"]["name"]
    (directory / name).mkdir(parents=True, exist_ok=True)
    (directory / name / f"{record['id']}.json").write_text(json.dumps(record))


def lock_inputs(service: Service, scenario: dict[str, str] = SCENARIO) -> dict[str, str]:
    digests = {}
    for kind, requirements in scenario.items():
        result = service.lock(service.build_request(requirements=requirements, target=_TARGET))
        digests[kind] = result.input_digest
    return digests


def files_of(index: WatchedIndex, project: str, version: str) -> list[str]:
    return [a.filename for a in index.files(project) if a.version == version]


def mutate(
    index: ControlledIndex, *, yank_reason: str = "broken build", advisories: Path | None = None
) -> dict[str, str]:
    """Publish, yank, delete, replace, and an advisory into `advisories`: one mutation per kind.
    Returns the tampered file's new sha256."""
    if advisories is not None:
        publish_advisory(advisories)
    index.publish("lockd-fx-pre", "1.2")
    for filename in files_of(index, "lockd-fx-plain", "1.1"):
        index.yank(filename, yank_reason)
    for filename in files_of(index, "lockd-fx-speedups", "0.3"):
        index.delete(filename)
    (tampered_file,) = files_of(index, "lockd-fx-conflict-c", "1.0")
    new_sha = index.replace_content(tampered_file)
    # conflict-a needs conflict-b<2 and 1.0 is its only such version: yanked, it is out of reach.
    for filename in files_of(index, "lockd-fx-conflict-b", "1.0"):
        index.yank(filename)
    return {"tampered_file": tampered_file, "tampered_sha": new_sha}


def request_for(
    settings: Settings,
    *,
    requirements: str,
    target: Mapping[str, object],
    constraints: str = "",
    options: LockOptions | None = None,
    indexes: Sequence[str] = (),
) -> LockRequest:
    """The request `lockd lock` builds under `settings` (its limits, URL hosts, overrides, indexes)."""
    return settings.build_request(
        requirements=requirements,
        target=target,
        constraints=constraints,
        options=options,
        indexes=indexes,
    )


def resolve_offline(settings: Settings, request: LockRequest) -> tuple[Lock, ResolveStats]:
    """Resolve as `lockd lock` does: one index client (sandbox builder as configured), no database."""
    options = settings.client_options()
    with IndexClient.from_options(options, metadata_builder=metadata_builder_for(settings)) as index:
        return timed_resolve(request, index, settings.resolve_timeout)


class PassThroughIndex:
    """An `IndexSource` that passes every call to a real client: tests that watch the resolver's
    index calls subclass it and override only the calls they note."""

    def __init__(self, client: IndexClient) -> None:
        self._client = client

    def project_page(self, index_url: str, name: NormalizedName) -> ProjectPage:
        return self._client.project_page(index_url, name)

    def fetch_metadata(self, file: DistFile) -> bytes:
        return self._client.fetch_metadata(file)

    def prefetch_metadata(self, files: Iterable[DistFile]) -> bool:
        return self._client.prefetch_metadata(files)

    def holds_page(self, index_url: str, name: NormalizedName) -> bool:
        return self._client.holds_page(index_url, name)

    def file_sha256(self, file: DistFile) -> str:
        return self._client.file_sha256(file)

    @property
    def workers(self) -> WorkerPool:
        return self._client.workers


def linux_request(index: ServedIndex, text: str, *, only_binary: bool = False) -> LockRequest:
    """A request for linux x86_64 / CPython 3.11 against `index`, built without settings."""
    target = Target.of("linux_x86_64", "3.11", None)
    return LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
        options=LockOptions(only_binary=only_binary),
    )


def fetched(fetcher: Fetcher, url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request through lockd's fetcher: the status, the URL that answered, and the raw body."""
    with fetcher.request("GET", url, headers=headers) as response:
        return response.status_code, response.url, b"".join(response.iter_raw())


def slots_get(slots: ConnectionSlots, url: str, timeout: dict[str, float] | None = None) -> Response:
    """One GET straight on a connection pool, its body not read (the caller closes the response)."""
    target = parse_request_url(url)
    host = [(b"Host", target.netloc.encode("ascii"))]  # sent as given, and HTTP/1.1 needs one
    return slots.handle_request(request_to("GET", target, host, timeout or {}))


def slots_read(slots: ConnectionSlots, url: str) -> bytes:
    """One GET straight on a connection pool, its body read whole (5 s to connect, read and write)."""
    response = slots_get(slots, url, {"connect": 5.0, "read": 5.0, "write": 5.0})
    try:
        return response.read()
    finally:
        response.close()


def json_page_entries(
    filenames: st.SearchStrategy[str],
    urls: Callable[[str], list[str]],
    optional: Mapping[str, st.SearchStrategy[object]],
    *,
    odd: bool = False,
) -> st.SearchStrategy[object]:
    """PEP 691 file entries: a filename (given or not), one of `urls(filename)`, any of `optional`.

    `odd`: now and then something that is no entry at all, for the tolerant reader."""

    @st.composite
    def entries(draw: st.DrawFn) -> object:
        if odd and draw(st.integers(0, 40)) == 0:
            return draw(st.sampled_from([None, "x", 3, []]))
        filename = draw(filenames)
        entry: dict[str, object] = {"url": draw(st.sampled_from(urls(filename)))}
        if draw(st.booleans()):
            entry["filename"] = filename
        for key, values in optional.items():
            if draw(st.booleans()):
                entry[key] = draw(values)
        return entry

    return entries()
