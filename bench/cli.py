"""``python -m bench.cli``: `lockd lock` against `uv pip compile --generate-hashes`, cold and warm, and its start-up.

    python -m bench.cli [--index-url URL] [--cases DIR ...] [--repeat 3]

- start-up: ``python -m lockd.cli lock --help`` wall time, and the time from starting
  ``lockd lock`` to its first HTTP request (a loopback server that answers 404 notes it), wall
  and CPU, as a user runs it: without ``-X importtime``, whose log the import time comes from in
  separate runs (the figure a user sees is never taken from a run that writes that log);
- per case (a directory with ``requirements.in``; target linux_x86_64, CPython 3.11): cold (both
  tools with empty cache directories), warm (the same cache directories again: metadata cached,
  pages within their TTL for both, as PyPI's ``max-age=600`` lets uv keep them) and warm with
  pages refetched (lockd with ``LOCKD_PAGE_TTL=0``; uv with ``--refresh-package`` of every pin's
  page is not the same thing, so uv's warm is the reference). The runs alternate, medians of
  ``--repeat``. Default index: real PyPI.

lockd runs from bytecode compiled beforehand beside its sources (`compile_beforehand`), as an
installed lockd does; ``--source`` compiles every module from source in every run instead.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.lockd_process import compile_beforehand

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parent.parent
_CASES = _ROOT.parent / "shared" / "bench" / "cases"
_PYPI = "https://pypi.org/simple/"


_TREE = [_ROOT]  # the lockd checkout measured (`--tree`: another one, e.g. main, for a before/after)
# `--source`: an empty bytecode cache nothing is written to, so every process compiles every module
# it imports (lockd's and the venv's) from source, on every run. No user pays that.
_PYCACHE: list[Path | None] = [None]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKD_", "UV_", "PIP_"))}
    pycache = _PYCACHE[0]
    if pycache is not None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return {**env, "PYTHONPATH": str(_TREE[0]), **extra}


def _has_cache() -> bool:
    return (_TREE[0] / "lockd" / "cli" / "user_cache.py").exists()


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    return str(found) if found.exists() else shutil.which("uv") or "uv"


_CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) per row, beside the wall times


def _timed(command: list[str], cwd: Path, env: dict[str, str], row: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    _CPU.setdefault(row, []).append(cpu)
    return seconds


def _lockd_command(index_url: str, cache: Path) -> list[str]:
    command = [sys.executable, "-m", "lockd", "lock", "requirements.in", "--platform", "linux_x86_64"]
    command += ["--python", "3.11", "--index-url", index_url, "-o", "lockd.txt"]
    return [*command, "--cache-dir", str(cache)] if _has_cache() else command


def _uv_command(index_url: str, cache: Path) -> list[str]:
    command = [_uv(), "pip", "compile", "requirements.in", "--generate-hashes", "--no-config", "-q"]
    command += ["--python-platform", "x86_64-manylinux_2_28", "--python-version", "3.11"]
    return [*command, "--index-url", index_url, "--cache-dir", str(cache), "-o", "uv.txt"]


def _import_seconds(log: str) -> float:
    """The sum of the self times of an `-X importtime` log."""
    total = 0
    for line in log.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            total += int(fields[0])
    return total / 1e6


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux): unlike wall time, it does not
    grow when other processes load the machine. Its threads' scheduler counts are in
    nanoseconds (`/proc/<pid>/stat` counts 10 ms ticks, a tenth of the start-up)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def _first_request(*, importtime: bool = False) -> tuple[float, float, float]:
    """From starting `lockd lock` to its first request reaching a loopback index: wall time, CPU
    time, and (`importtime`) the import time of the `-X importtime` log as it stood when the
    request arrived (0 without it). The wall and CPU times are a user's only without it."""
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.set()
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as work:
        Path(work, "requirements.in").write_text("numpy\n")
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        log = Path(work) / "importtime.log"
        flags = ["-X", "importtime"] if importtime else []
        with log.open("wb") as stderr:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, *flags, *_lockd_command(url, Path(work) / "cache")[1:]],
                cwd=work,
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            arrived.wait(60)
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds(process.pid)
            imports = _import_seconds(log.read_text()) if importtime else 0.0
            process.wait(60)
    server.shutdown()
    server.server_close()
    return seconds, cpu, imports


def _median(measure: Callable[[], float], repeat: int) -> float:
    return statistics.median(measure() for _ in range(repeat))


def _startup(repeat: int) -> None:
    help_command = [sys.executable, "-m", "lockd.cli", "lock", "--help"]
    help_seconds = _median(lambda: _timed(help_command, _ROOT, _env()), repeat)
    firsts = [_first_request() for _ in range(repeat)]
    first = statistics.median(seconds for seconds, _, _ in firsts)
    cpu = statistics.median(cpu for _, cpu, _ in firsts)
    imports = _median(lambda: _first_request(importtime=True)[2], repeat)
    baseline = _median(lambda: _timed([sys.executable, "-c", "pass"], _ROOT, _env()), repeat)
    print(
        f"python -c pass: {baseline * 1000:.0f} ms; lockd lock --help: {help_seconds * 1000:.0f} ms; "
        f"start to first request: {first * 1000:.0f} ms, {cpu * 1000:.0f} ms CPU "
        f"(imports before it, under -X importtime in other runs: {imports * 1000:.0f} ms)"
    )


def _case(case: Path, index_url: str, repeat: int) -> None:
    rows: dict[str, list[float]] = {key: [] for key in ("uv cold", "lockd cold", "uv warm", "lockd warm")}
    rows["lockd warm, pages refetched"] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            shutil.copy(case / "requirements.in", work / "requirements.in")
            uv, lockd = _uv_command(index_url, work / "uv-cache"), _lockd_command(index_url, work / "lockd")
            rows["uv cold"].append(_timed(uv, work, _env(), "uv cold"))
            rows["lockd cold"].append(_timed(lockd, work, _env(), "lockd cold"))
            rows["uv warm"].append(_timed(uv, work, _env(), "uv warm"))
            rows["lockd warm"].append(_timed(lockd, work, _env(), "lockd warm"))
            refetched = _timed(lockd, work, _env(LOCKD_PAGE_TTL="0"), "lockd warm, pages refetched")
            rows["lockd warm, pages refetched"].append(refetched)
    median = {key: statistics.median(values) for key, values in rows.items()}
    cpu = {key: statistics.median(_CPU.pop(key)) for key in rows}
    pins = sum(1 for line in (case / "requirements.in").read_text().splitlines() if line.strip())
    print(
        f"{case.name} ({pins} requirements): "
        + "; ".join(f"{key} {value:.2f} s ({cpu[key]:.2f} s CPU)" for key, value in median.items())
        + f"; cold ratio {median['lockd cold'] / median['uv cold']:.2f}×"
        + f", warm ratio {median['lockd warm'] / median['uv warm']:.2f}×"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli")
    parser.add_argument("--index-url", default=_PYPI)
    parser.add_argument("--cases", nargs="*", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--tree", type=Path, default=_ROOT, help="the lockd checkout to measure")
    parser.add_argument(
        "--source",
        action="store_true",
        help="no bytecode: every run compiles every module it imports from source",
    )
    args = parser.parse_args(argv)
    _TREE[0] = args.tree.resolve()
    footing = (
        "every module compiled from source in every run"
        if args.source
        else "its bytecode compiled beforehand"
    )
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; uv at {_uv()}; "
        f"lockd from {_TREE[0]}, {footing}"
    )
    with tempfile.TemporaryDirectory(prefix="lockd-bench-pycache-") as pycache:
        if args.source:
            _PYCACHE[0] = Path(pycache)
        else:
            compile_beforehand(_TREE[0])
        if not args.no_startup:
            _startup(args.repeat)
        cases = args.cases if args.cases is not None else sorted(p for p in _CASES.iterdir() if p.is_dir())
        for case in cases:
            _case(case, args.index_url, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
