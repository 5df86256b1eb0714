"""lockd as the benchmark runs it from outside: the CLI and the HTTP server as subprocesses.

Every run gets its own database (a SQLite file in a temp directory, or a PostgreSQL database this
module creates and drops), so "cold" really is cold: lockd keeps its metadata and hash caches in
the database. Peak RSS is read from ``/proc/<pid>/status`` (VmHWM) of the server and its children,
because psutil is not installed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cases import Case, IndexSetup
from bench.peers import answer, peer_env
from bench.timing import Unavailable

__all__ = [
    "POSTGRES_ADMIN_URL",
    "LockdServer",
    "PostResult",
    "compile_beforehand",
    "lockd_available",
    "lockd_cli_lock",
    "lockd_env",
    "lockd_migrate",
    "lockd_root",
    "lockd_token",
    "peak_rss_kib",
    "post_lock",
    "postgres_database",
]

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLI_TIMEOUT = 900.0


def lockd_available(*modules: str) -> None:
    """`Unavailable` unless every ``lockd.<module>`` imports (the pieces land one by one)."""
    for module in modules:
        try:
            __import__(f"lockd.{module}")
        except Exception as exc:
            raise Unavailable(f"lockd.{module} is not available yet ({type(exc).__name__}: {exc})") from exc


@functools.cache
def compile_beforehand(root: Path) -> None:
    """Writes the bytecode of ``root``'s lockd beside its sources (untimed), as installing it would.

    pip compiles a wheel's modules when it installs them, and uv runs as a compiled binary. An
    export of a revision has no ``__pycache__``, and this environment sets
    ``PYTHONDONTWRITEBYTECODE=1``, so without this every lockd process compiled each lockd module
    it imported from source, on every run: about 120 ms of `lockd lock`'s start-up, and the
    lazily imported modules of a new server's first resolution, paid by no user. Third-party
    packages in the venv were compiled when pip installed them. A checkout's edited module is
    compiled again here (its source is newer than its .pyc).
    """
    packages = [str(root / name) for name in ("lockd", "api") if (root / name).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], capture_output=True, check=False)


def lockd_env(database_url: str, index: IndexSetup, root: Path | None = None) -> dict[str, str]:
    """The environment of a lockd subprocess; ``root``: the tree its ``lockd`` is imported from.

    lockd runs from bytecode compiled beforehand (`compile_beforehand`): the footing of an
    installed lockd.
    """
    compile_beforehand(ROOT if root is None else root)
    env = peer_env()
    if root is not None:
        env["PYTHONPATH"] = str(root)
    # The CLI's persistent cache defaults to the user's cache directory: never the real one here.
    env.setdefault("XDG_CACHE_HOME", str(Path(tempfile.gettempdir()) / "lockd-bench-xdg-cache"))
    env["LOCKD_DATABASE_URL"] = database_url
    env["LOCKD_INDEX_URL"] = index.pypi_url
    env["LOCKD_PYTORCH_INDEX_URL"] = index.pytorch_base
    env["LOCKD_LOG_LEVEL"] = "WARNING"
    return env


def lockd_root(env: dict[str, str]) -> Path:
    """Where a lockd subprocess runs: the tree its ``PYTHONPATH`` names (a `--lockd-rev` export), else this one."""
    first = env.get("PYTHONPATH", "").split(os.pathsep)[0]
    return Path(first) if first else ROOT


def lockd_migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lockd", "migrate"],
        env=env,
        cwd=lockd_root(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise Unavailable(
            f"`lockd migrate` failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}"
        )


def lockd_token(env: dict[str, str]) -> str:
    """A fresh ``admin`` bearer token in the database ``env`` points at (POST /lock needs ``lock``)."""
    done = subprocess.run(
        [sys.executable, "-m", "lockd", "token", "create", "--scope", "admin", "--name", f"bench-{uuid.uuid4().hex[:6]}"],
        env=env, cwd=lockd_root(env), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    token = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    if done.returncode != 0 or not token:
        raise Unavailable(
            f"`lockd token create` failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}"
        )
    return token


def lockd_cli_lock(
    case: Case,
    requirements: str,
    index: IndexSetup,
    env: dict[str, str],
    workdir: Path,
    *,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One ``python -m lockd lock`` for the case's target (plus ``extra`` arguments); returns the pin count.

    Callers time this call, so it imports nothing into the bench process: the check that lockd's
    pieces import (`lockd_available`) is theirs to make first. Made here, it put the bench
    process's first import of `lockd.service` (about 0.2 s) into the first timed CLI run.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "requirements.in"
    source.write_text(requirements)
    argv = [
        sys.executable, "-m", "lockd", "lock", str(source),
        "--platform", case.platform, "--python", case.python,
        "--index-url", index.pypi_url, "--pytorch-index-url", index.pytorch_base,
    ]  # fmt: skip
    if case.cuda is not None:
        argv += ["--cuda", case.cuda]
    argv += extra
    done = subprocess.run(
        argv, env=env, cwd=lockd_root(env), capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"lockd lock exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}")
    return answer(done.stdout)


@contextlib.contextmanager
def postgres_database(prefix: str = "lockd_bench") -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    try:
        import psycopg  # noqa: PLC0415  (only this section needs PostgreSQL)
    except ImportError as exc:
        raise Unavailable(f"psycopg is not installed: {exc}") from exc
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        raise Unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable: {exc}") from exc
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        task_dir = Path(f"/proc/{current}/task")
        with contextlib.suppress(OSError):
            for task in task_dir.iterdir():
                with contextlib.suppress(OSError):
                    for child in (task / "children").read_text().split():
                        found.append(int(child))
                        pending.append(int(child))
    return found


def peak_rss_kib(pid: int) -> dict[int, int]:
    """VmHWM (peak resident set, KiB) of ``pid`` and every descendant still alive."""
    peaks: dict[int, int] = {}
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[each] = int(line.split()[1])
    return peaks


@dataclass(frozen=True, slots=True)
class PostResult:
    seconds: float
    status: int
    lock_digest: str | None
    input_digest: str | None
    body: bytes


def post_lock(
    base: str, case: Case, requirements: str, *, token: str | None = None, timeout: float = CLI_TIMEOUT
) -> PostResult:
    """``POST /lock?python=&platform=&cuda=`` with the raw requirements.in as the body."""
    query = {"python": case.python, "platform": case.platform}
    if case.cuda is not None:
        query["cuda"] = case.cuda
    url = f"{base}/lock?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, data=requirements.encode(), method="POST")
    request.add_header("Content-Type", "text/plain")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = response.status
            headers = response.headers
    except urllib.error.HTTPError as exc:
        body = exc.read()
        raise RuntimeError(f"POST /lock answered {exc.code}: {body[:1500]!r}") from None
    seconds = time.perf_counter() - start
    return PostResult(seconds, status, headers.get("Lock-Digest"), headers.get("Input-Digest"), body)


@dataclass(slots=True)
class LockdServer:
    """``python -m lockd serve`` on a free loopback port with its own database."""

    base: str
    process: subprocess.Popen[bytes]
    workers: int
    database_url: str
    log: Path
    token: str
    peaks: dict[int, int] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        database_url: str,
        index: IndexSetup,
        workdir: Path,
        *,
        workers: int = 1,
        root: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> LockdServer:
        """``root``: the lockd tree to run (default this one); ``settings``: extra ``LOCKD_*`` variables."""
        if root is None:
            lockd_available("cli", "http", "service")
        workdir.mkdir(parents=True, exist_ok=True)
        env = lockd_env(database_url, index, root)
        env.update(settings or {})
        lockd_migrate(env)
        token = lockd_token(env)
        port = _free_port()
        argv = [sys.executable, "-m", "lockd", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers != 1:
            argv += ["--workers", str(workers)]
        log = workdir / f"server-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=lockd_root(env),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(f"http://127.0.0.1:{port}", process, workers, database_url, log, token)
        server._wait_ready()
        return server

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(
                    f"lockd serve exited {self.process.returncode}: {self.log.read_text()[-800:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise Unavailable(
            f"lockd serve did not answer /healthz in {timeout:.0f}s: {self.log.read_text()[-800:]}"
        )

    def post_lock(self, case: Case, requirements: str) -> PostResult:
        return post_lock(self.base, case, requirements, token=self.token)

    def sample_rss(self) -> dict[int, int]:
        """Remember the highest VmHWM seen per process (workers may be replaced)."""
        for pid, kib in peak_rss_kib(self.process.pid).items():
            self.peaks[pid] = max(kib, self.peaks.get(pid, 0))
        return dict(self.peaks)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.sample_rss()
            # The server runs in its own session: signal only that group, which this module started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def __enter__(self) -> LockdServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
