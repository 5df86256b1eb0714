"""lockd and uv on the same footing (issue 16), side by side in one run, tools interleaved run by run.

| mode | lockd (HTTP, `lockd-http`) | uv |
|---|---|---|
| cold | a new server and database per run | an empty ``UV_CACHE_DIR`` per run |
| warm | a running server with ``LOCKD_PAGE_TTL=0`` (pages refetched, metadata cached), fresh input | the cache the last cold run filled (uv refetches pages: PyPI sends no caching headers) |
| cached | a running server with the default page TTL (pages and metadata cached), fresh input | ``uv pip compile --offline`` on that cache |

The CLI (`lockd-cli`): cold is ``lockd lock --cache-dir <new dir>``, warm the same directory again
with a fresh input; a lockd without ``--cache-dir`` (see ``lockd lock --help``) runs both without
it, and its warm row says so. Start-up is the time from starting ``lockd lock`` to its first request
(`cli_startup`). Peak RSS is the VmHWM of the server process after each cold run.
Warm and cached servers open the database of the last cold run and are primed with one untimed
fresh input, so "running server" means a server that has already resolved this stack once.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.builds import LockdBuild
from bench.cases import Case, IndexSetup, with_nonce
from bench.lockd_process import LockdServer, lockd_cli_lock, lockd_env, lockd_root
from bench.peers import answer, uv_compile
from bench.timing import FAILED, NOT_AVAILABLE, OK, Measurement, Sample, Unavailable

__all__ = ["MODES", "cli_has_cache_dir", "cli_startup", "run_footing"]

MODES = ("cold", "warm", "cached")
Sampler = Callable[[int], Sample]


def cli_has_cache_dir(build: LockdBuild) -> bool:
    """Whether this build's ``lockd lock`` takes ``--cache-dir`` (the persistent CLI cache)."""
    env = lockd_env("sqlite:///unused.db", _no_index(), build.root)
    done = subprocess.run([sys.executable, "-m", "lockd", "lock", "--help"], env=env, cwd=lockd_root(env),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    return "--cache-dir" in done.stdout


def _no_index() -> IndexSetup:
    return IndexSetup(label="none", pypi_url="http://127.0.0.1:9/simple/", pytorch_base="http://127.0.0.1:9/whl",
                      pypi_is_fixture=True)  # fmt: skip


def interleave(times: int, samplers: dict[str, Sampler], rows: dict[str, Measurement], make: Callable[[str], dict[str, Any]]) -> None:  # fmt: skip
    """Run ``samplers`` round-robin ``times`` times; a tool that fails stops and keeps its reason."""
    samples: dict[str, list[Sample]] = {tool: [] for tool in samplers}
    stopped: dict[str, tuple[str, str]] = {}
    for i in range(times):
        for tool, sampler in samplers.items():
            if tool in stopped:
                continue
            try:
                samples[tool].append(sampler(i))
            except Unavailable as exc:
                stopped[tool] = (NOT_AVAILABLE, str(exc))
            except Exception as exc:
                stopped[tool] = (FAILED, f"{type(exc).__name__}: {exc}"[-3000:])
    for tool in samplers:
        status, detail = stopped.get(tool, (OK, ""))
        rows[tool] = Measurement(samples=tuple(samples[tool]), status=status, detail=detail, **make(tool))


class _Uv:
    def __init__(self, case: Case, index: IndexSetup, workdir: Path) -> None:
        self.case, self.index, self.workdir = case, index, workdir
        self.filled: Path | None = None

    def cold(self, i: int) -> Sample:
        cache = self.workdir / f"cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        sample = _timed(lambda: uv_compile(self.case, self.index, self.workdir / "run", cache))
        if self.filled is not None and self.filled != cache:
            shutil.rmtree(self.filled, ignore_errors=True)
        self.filled = cache
        return sample

    def warm(self, i: int) -> Sample:
        cache = self._cache()
        return _timed(lambda: uv_compile(self.case, self.index, self.workdir / "run", cache))

    def offline(self, i: int) -> Sample:
        cache = self._cache()
        return _timed(lambda: uv_compile(self.case, self.index, self.workdir / "run", cache, offline=True))

    def _cache(self) -> Path:
        if self.filled is None:  # cold failed or did not run: fill one, untimed
            self.cold(0)
        assert self.filled is not None
        return self.filled


class _Http:
    """One build's servers on one case: a fresh one per cold run, then a warm and a cached one."""

    def __init__(self, case: Case, index: IndexSetup, build: LockdBuild, workdir: Path) -> None:
        self.case, self.index, self.build, self.workdir = case, index, build, workdir
        self.database: Path | None = None
        self.server: LockdServer | None = None
        self.nonce = 0

    def _start(self, database: Path, settings: dict[str, str]) -> LockdServer:
        return LockdServer.start(f"sqlite:///{database}", self.index, database.parent, root=self.build.root,
                                 settings=settings)  # fmt: skip

    def cold(self, i: int) -> Sample:
        directory = self.workdir / f"cold-{i}"
        shutil.rmtree(directory, ignore_errors=True)
        with self._start(directory / "lockd.db", {}) as server:
            result = server.post_lock(self.case, self.case.requirements)
            peaks = server.sample_rss()
        if self.database is not None and self.database.parent != directory:
            shutil.rmtree(self.database.parent, ignore_errors=True)
        self.database = directory / "lockd.db"
        return Sample(
            result.seconds,
            {**_answer(result.body), "worker_peak_rss_kib": max(peaks.values(), default=0)},
        )

    def open(self, mode: str) -> None:
        """The warm (``LOCKD_PAGE_TTL=0``) or cached (default TTL) server, primed with one fresh input."""
        self.close_server()
        if self.database is None:
            self.cold(0)
        assert self.database is not None
        settings = {"LOCKD_PAGE_TTL": "0"} if mode == "warm" else {}
        self.server = self._start(self.database, settings)
        self.server.post_lock(self.case, self._fresh())

    def timed(self, i: int) -> Sample:
        if self.server is None:
            raise Unavailable("the server did not start (see the cold row)")
        result = self.server.post_lock(self.case, self._fresh())
        return Sample(result.seconds, _answer(result.body))

    def _fresh(self) -> str:
        self.nonce += 1
        return with_nonce(self.case.requirements, self.nonce)

    def close_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class _Cli:
    def __init__(self, case: Case, index: IndexSetup, build: LockdBuild, workdir: Path, cache_dir: bool) -> None:  # fmt: skip
        self.case, self.index, self.build, self.workdir, self.cache_dir = (
            case,
            index,
            build,
            workdir,
            cache_dir,
        )
        self.env = lockd_env(f"sqlite:///{workdir}/unused.db", index, build.root)
        self.env["XDG_CACHE_HOME"] = str(workdir / "xdg")  # a lockd whose cache is implicit: a private one
        self.filled: Path | None = None
        self.nonce = 0

    def _run(self, text: str, cache: Path) -> Sample:
        extra = ("--cache-dir", str(cache)) if self.cache_dir else ()
        return _timed(
            lambda: lockd_cli_lock(self.case, text, self.index, self.env, self.workdir / "run", extra=extra)
        )

    def cold(self, i: int) -> Sample:
        cache = self.workdir / f"cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        sample = self._run(self.case.requirements, cache)
        if self.filled is not None and self.filled != cache:
            shutil.rmtree(self.filled, ignore_errors=True)
        self.filled = cache
        return sample

    def warm(self, i: int) -> Sample:
        if not self.cache_dir:
            raise Unavailable(
                "this lockd's `lockd lock` has no --cache-dir: no persistent cache, warm = cold"
            )
        if self.filled is None:
            self.cold(0)
        assert self.filled is not None
        self.nonce += 1
        return self._run(with_nonce(self.case.requirements, self.nonce), self.filled)


def run_footing(
    case: Case,
    index: IndexSetup,
    builds: list[LockdBuild],
    workroot: Path,
    *,
    times: int,
    cli_cache_dir: dict[str, bool],
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    """Cold, warm and cached rows for uv and each build (HTTP and CLI) on one case."""
    workdir = workroot / f"footing-{case.name}"
    uv = _Uv(case, index, workdir / "uv")
    https = {b.tool("lockd-http"): _Http(case, index, b, workdir / f"http{b.suffix}") for b in builds}
    clis = {b.tool("lockd-cli"): _Cli(case, index, b, workdir / f"cli{b.suffix}", cli_cache_dir[b.suffix]) for b in builds}  # fmt: skip
    rows: list[Measurement] = []

    def make(mode: str) -> Callable[[str], dict[str, Any]]:
        return lambda tool: {
            "section": "footing",
            "case": case.name,
            "index": index.label,
            "tool": tool,
            "mode": mode,
        }

    try:
        for mode in MODES:
            log(f"  {case.name}: {mode} ×{times} (uv, {', '.join(b.tool('lockd') for b in builds)})")
            samplers: dict[str, Sampler] = {
                "uv": {"cold": uv.cold, "warm": uv.warm, "cached": uv.offline}[mode]
            }
            opened: dict[str, Measurement] = {}
            for tool, http in https.items():
                if mode == "cold":
                    samplers[tool] = http.cold
                    continue
                try:
                    http.open(mode)
                    samplers[tool] = http.timed
                except Exception as exc:  # a server that cannot start or prime: one row says why
                    status = NOT_AVAILABLE if isinstance(exc, Unavailable) else FAILED
                    opened[tool] = Measurement(status=status, detail=f"{type(exc).__name__}: {exc}"[-3000:],
                                               **make(mode)(tool))  # fmt: skip
            if mode != "cached":
                for tool, cli in clis.items():
                    samplers[tool] = cli.cold if mode == "cold" else cli.warm
            found: dict[str, Measurement] = dict(opened)
            interleave(times, samplers, found, make(mode))
            rows += found.values()
            for http in https.values():
                http.close_server()
    finally:
        for http in https.values():
            http.close_server()
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _timed(action: Callable[[], dict[str, Any]]) -> Sample:
    start = time.perf_counter()
    extra = action()
    return Sample(time.perf_counter() - start, extra)


def _answer(body: bytes) -> dict[str, Any]:
    return answer(body.decode("utf-8", "replace"))


class _FirstRequest(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        stub = self.server
        assert isinstance(stub, _StubIndex)
        if not stub.seen.is_set():
            stub.arrived.append(time.perf_counter())
            stub.seen.set()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StubIndex(http.server.ThreadingHTTPServer):
    """An index that answers 404 to everything and remembers when its first request arrived."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FirstRequest)
        self.seen = threading.Event()
        self.arrived: list[float] = []


def cli_startup(build: LockdBuild, workdir: Path, *, times: int, cache_dir: bool) -> Measurement:
    """Seconds from starting ``lockd lock`` to its first request to the index (a local stub that answers 404)."""
    common: dict[str, Any] = {"section": "startup", "case": "requests", "index": "local stub",
                              "tool": build.tool("lockd-cli"), "mode": "start-up"}  # fmt: skip
    samples: list[Sample] = []
    try:
        for i in range(times):
            server = _StubIndex()
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            base = f"http://127.0.0.1:{server.server_address[1]}"
            run = workdir / f"startup-{i}"
            run.mkdir(parents=True, exist_ok=True)
            (run / "requirements.in").write_text("requests\n")
            env = lockd_env(f"sqlite:///{run}/unused.db", _no_index(), build.root)
            env["XDG_CACHE_HOME"] = str(run / "xdg")
            argv = [sys.executable, "-m", "lockd", "lock", str(run / "requirements.in"), "--platform", "linux_x86_64",
                    "--python", "3.11", "--index-url", f"{base}/simple/", "--pytorch-index-url", f"{base}/whl"]  # fmt: skip
            if cache_dir:
                argv += ["--cache-dir", str(run / "cache")]
            try:
                start = time.perf_counter()
                process = subprocess.Popen(argv, env=env, cwd=lockd_root(env), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE)  # fmt: skip
                got = server.seen.wait(60)
                process.kill()
                _, err = process.communicate(timeout=30)
                if not got:
                    raise RuntimeError(
                        f"lockd lock made no request in 60 s: {err.decode(errors='replace')[-800:]}"
                    )
                samples.append(Sample(server.arrived[0] - start, {}))
            finally:
                server.shutdown()
                server.server_close()
                shutil.rmtree(run, ignore_errors=True)
    except Exception as exc:
        return Measurement(
            samples=tuple(samples), status=FAILED, detail=f"{type(exc).__name__}: {exc}", **common
        )
    return Measurement(samples=tuple(samples), **common)
