"""A drift run over many stored locks (issue 16: 10,000 locks, warm, under 3 minutes), per lockd build.

The locks are stored once, through ``POST /lock`` to a server of the first build (the baseline when
there is one, so every later build's ``lockd migrate`` can bring the database up to its schema):
distinct inputs (`with_nonce`) of the fixture cases in turn, four at a time to a server with two
workers. Each build then gets
a copy of that SQLite database (its metadata cache filled by the storing: a warm drift run) and
one timed ``python -m lockd drift run`` over all of it, as cron would start it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.builds import LockdBuild
from bench.cases import Case, IndexSetup, with_nonce
from bench.lockd_process import LockdServer, lockd_env, lockd_migrate, lockd_root
from bench.timing import FAILED, NOT_AVAILABLE, Measurement, Sample, Unavailable, load_note

__all__ = ["run_drift_fleet"]

STORE_THREADS = 4
STORE_WORKERS = 2  # storing is setup: both cores, two requests in flight per worker


def _store(
    cases: list[Case],
    index: IndexSetup,
    build: LockdBuild,
    *,
    database: Path,
    count: int,
    log: Callable[[str], None],
) -> float:
    started = time.perf_counter()
    url = f"sqlite:///{database}"
    with LockdServer.start(url, index, database.parent, root=build.root, workers=STORE_WORKERS) as server:

        def one(n: int) -> None:
            case = cases[n % len(cases)]
            text = case.requirements if n < len(cases) else with_nonce(case.requirements, n)
            server.post_lock(case, text)

        for case in cases:  # the first round alone: it fills the caches every later input reads
            one(cases.index(case))
        with ThreadPoolExecutor(STORE_THREADS) as pool:
            for first in range(len(cases), count, 1000):
                log(f"    drift: {first}/{count} locks stored ({time.perf_counter() - started:.0f} s)")
                list(pool.map(one, range(first, min(count, first + 1000))))
    return time.perf_counter() - started


def _drift(build: LockdBuild, database: Path, index: IndexSetup, timeout: float) -> dict[str, Any]:
    env = lockd_env(f"sqlite:///{database}", index, build.root)
    lockd_migrate(env)
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "lockd", "drift", "run"], env=env, cwd=lockd_root(env),
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"drift run still running after {timeout:.0f} s (stopped)") from None
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise RuntimeError(
            f"lockd drift run exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"
        )
    try:
        run = json.loads(done.stdout)
    except ValueError:
        run = {}
    return {"seconds": seconds, "locks_checked": run.get("locks_checked"), "status": run.get("status"),
            "run_duration_s": run.get("duration_seconds")}  # fmt: skip


def run_drift_fleet(
    cases: list[Case],
    index: IndexSetup,
    builds: list[LockdBuild],
    workdir: Path,
    *,
    locks: int,
    timeout: float,
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    """One "drift" row per build: a timed ``lockd drift run`` over ``locks`` stored locks."""
    rows: list[Measurement] = []
    first = builds[-1] if len(builds) > 1 else builds[0]  # builds: [current, baseline]
    master = workdir / "store" / "lockd.db"
    shutil.rmtree(master.parent, ignore_errors=True)
    master.parent.mkdir(parents=True)
    try:
        log(f"  drift: storing {locks} locks with {first.tool('lockd')}")
        stored_s = _store(cases, index, first, database=master, count=locks, log=log)
    except Exception as exc:
        status = NOT_AVAILABLE if isinstance(exc, Unavailable) else FAILED
        detail = f"storing the locks failed: {type(exc).__name__}: {exc}"[-3000:]
        return [Measurement("drift", f"{locks} locks", index.label, b.tool("lockd drift run"), "warm",
                            status=status, detail=detail) for b in builds]  # fmt: skip
    for build in builds:
        copy = workdir / f"drift{build.suffix}" / "lockd.db"
        shutil.rmtree(copy.parent, ignore_errors=True)
        copy.parent.mkdir(parents=True)
        shutil.copy(master, copy)
        tool = build.tool("lockd drift run")
        try:
            log(f"  drift: {tool} over {locks} locks")
            load = load_note()
            extra = _drift(build, copy, index, timeout)
            extra.update({"locks": locks, "load": load, "store_s": round(stored_s, 1)})
            rows.append(Measurement("drift", f"{locks} locks", index.label, tool, "warm",
                                    (Sample(extra["seconds"], extra),), extra=extra))  # fmt: skip
        except Exception as exc:
            rows.append(Measurement("drift", f"{locks} locks", index.label, tool, "warm", status=FAILED,
                                    detail=f"{type(exc).__name__}: {exc}"[-3000:], extra={"locks": locks}))  # fmt: skip
        finally:
            shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.rmtree(master.parent, ignore_errors=True)
    return rows
