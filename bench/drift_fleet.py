"""A drift run over many stored locks (issue 16: 10,000 locks, warm, under 3 minutes), per lockd build.

The locks are stored once, by `bench/drift_store_worker.py` running in the first build (the baseline
when there is one, so every later build's ``lockd migrate`` can bring the database up to its
schema): distinct inputs (`with_nonce`) of the fixture cases in turn, each case resolved through
the service and the other inputs given the lock that resolution would give (the worker checks one
per case against a real resolution), about a minute for 10,000 instead of ten through ``POST /lock``.
Each build then gets a copy of that SQLite database (its metadata cache filled by the storing: a
warm drift run) and one timed ``python -m lockd drift run`` over all of it, as cron would start it.

`run_drift_replicas` times the run on PostgreSQL alone and with helping replicas (``lockd serve``
processes on the same database, which claim batches of the run: `lockd.drift_checks`).

    python -m bench.drift_fleet --locks 10000 [--postgres --replicas 1,2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.builds import LockdBuild, current_build
from bench.cases import FIXTURE_CASES, Case, IndexSetup, load_cases, with_nonce
from bench.indexes import FixtureIndexProcess, fixture_setup
from bench.lockd_process import LockdServer, lockd_env, lockd_migrate, lockd_root, postgres_database
from bench.timing import FAILED, NOT_AVAILABLE, Measurement, Sample, Unavailable, load_note

__all__ = ["main", "run_drift_fleet", "run_drift_replicas", "store_drift_locks"]

WORKER = Path(__file__).resolve().parent / "drift_store_worker.py"
STORE_TIMEOUT = 1800.0


def store_drift_locks(
    cases: list[Case], index: IndexSetup, build: LockdBuild, *, database_url: str, count: int, workdir: Path
) -> float:
    """Store `count` locks (distinct inputs of `cases` in turn) with `build`'s lockd; returns seconds."""
    started = time.perf_counter()
    targets = [{"platform": c.platform, "python": c.python, "cuda": c.cuda} for c in cases]
    inputs = [
        (n % len(cases), with_nonce(cases[n % len(cases)].requirements, n)) for n in range(len(cases), count)
    ]
    job = {
        "database_url": database_url,
        "index_url": index.pypi_url,
        "pytorch_base": index.pytorch_base,
        "cases": [
            {"name": c.name, "requirements": c.requirements, "target": t}
            for c, t in zip(cases, targets, strict=True)
        ],
        "inputs": inputs,
        "out": str(workdir / "stored.json"),
    }
    path = workdir / "store-job.json"
    path.write_text(json.dumps(job))
    env = lockd_env(database_url, index, build.root)
    done = subprocess.run([sys.executable, str(WORKER), str(path)], env=env, cwd=lockd_root(env),
                          capture_output=True, text=True, timeout=STORE_TIMEOUT, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"storing the locks failed ({done.returncode}): {(done.stderr or done.stdout)[-1500:]}"
        )
    stored = json.loads((workdir / "stored.json").read_text())
    if stored["stored"] != count:
        raise RuntimeError(f"{stored['stored']} locks stored, not {count}")
    return time.perf_counter() - started


def _children_cpu() -> float:
    """CPU seconds (user and system) of this process's waited-for children: the machine is shared,
    so a run's CPU time says more than its wall clock."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _drift(build: LockdBuild, database_url: str, index: IndexSetup, timeout: float) -> dict[str, Any]:
    env = lockd_env(database_url, index, build.root)
    lockd_migrate(env)
    start, cpu = time.perf_counter(), _children_cpu()
    try:
        done = subprocess.run([sys.executable, "-m", "lockd", "drift", "run"], env=env, cwd=lockd_root(env),
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"drift run still running after {timeout:.0f} s (stopped)") from None
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if done.returncode not in (0, 3):
        raise RuntimeError(
            f"lockd drift run exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"
        )
    try:
        run = json.loads(done.stdout)
    except ValueError:
        run = {}
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "locks_checked": run.get("locks_checked"), "status": run.get("status"),
            "run_duration_s": run.get("duration_seconds"), "counts": run.get("counts")}  # fmt: skip


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
        stored_s = store_drift_locks(
            cases, index, first, database_url=f"sqlite:///{master}", count=locks, workdir=master.parent
        )
    except Exception as exc:
        status = NOT_AVAILABLE if isinstance(exc, Unavailable) else FAILED
        detail = f"storing the locks failed: {type(exc).__name__}: {exc}"[-3000:]
        return [Measurement("drift", f"{locks} locks", index.label, b.tool("lockd drift run"), "warm",
                            status=status, detail=detail) for b in builds]  # fmt: skip
    log(f"  drift: {locks} locks stored in {stored_s:.0f} s")
    for build in builds:
        copy = workdir / f"drift{build.suffix}" / "lockd.db"
        shutil.rmtree(copy.parent, ignore_errors=True)
        copy.parent.mkdir(parents=True)
        shutil.copy(master, copy)
        tool = build.tool("lockd drift run")
        try:
            log(f"  drift: {tool} over {locks} locks")
            load = load_note()
            extra = _drift(build, f"sqlite:///{copy}", index, timeout)
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


def run_drift_replicas(
    cases: list[Case],
    index: IndexSetup,
    build: LockdBuild,
    workdir: Path,
    *,
    locks: int,
    replicas: tuple[int, ...],
    timeout: float,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """On one PostgreSQL database: a timed ``lockd drift run`` per entry of `replicas`, with that
    many replicas working on it (the run's process and ``replicas - 1`` helping servers)."""
    results: list[dict[str, Any]] = []
    with postgres_database("lockd_drift") as url:
        workdir.mkdir(parents=True, exist_ok=True)
        stored_s = store_drift_locks(cases, index, build, database_url=url, count=locks, workdir=workdir)
        log(f"  drift: {locks} locks stored on PostgreSQL in {stored_s:.0f} s")
        for count in replicas:
            helpers = [
                LockdServer.start(url, index, workdir / f"replica-{n}", root=build.root, settings=_HELPING)
                for n in range(count - 1)
            ]
            try:
                load = load_note()
                extra = _drift(build, url, index, timeout)
            finally:
                for helper in helpers:
                    helper.stop()
            extra.update({"locks": locks, "replicas": count, "load": load, "store_s": round(stored_s, 1),
                          "batches_by_replica": _batches_by_replica(url)})  # fmt: skip
            log(f"  drift: {count} replica(s): {extra['seconds']:.1f} s ({load})")
            results.append(extra)
    return results


def _batches_by_replica(url: str) -> list[int]:
    """How many batches of the latest run each replica (process) finished, most first."""
    import psycopg  # noqa: PLC0415  (only this section needs PostgreSQL)

    query = (
        "SELECT split_part(claimed_by, ':', 2), count(*) FROM drift_batches"
        " WHERE run_id = (SELECT max(id) FROM drift_runs) GROUP BY 1 ORDER BY 2 DESC"
    )
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return [int(row[1]) for row in conn.execute(query)]


# A helping replica looks for a run to join every half second (the default is 2 s).
_HELPING = {"LOCKD_DRIFT_HELP_INTERVAL": "0.5"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_fleet", description=__doc__)
    parser.add_argument("--locks", type=int, default=10_000)
    parser.add_argument(
        "--cases", default="all", help="fixture cases stored in turn (comma-separated, or all)"
    )
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL, with --replicas")
    parser.add_argument("--replicas", default="1,2", help="with --postgres: replicas per timed run")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    cases = load_cases(FIXTURE_CASES, "fixture", None if args.cases == "all" else args.cases.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lockd-drift-fleet-"))
    with FixtureIndexProcess.start(0) as fixture:
        index = fixture_setup(fixture)
        if args.postgres:
            replicas = tuple(int(n) for n in args.replicas.split(","))
            found: list[dict[str, Any]] = run_drift_replicas(
                cases, index, current_build(), workdir, locks=args.locks, replicas=replicas, timeout=args.timeout,
                log=_stderr,
            )  # fmt: skip
        else:
            rows = run_drift_fleet(
                cases, index, [current_build()], workdir, locks=args.locks, timeout=args.timeout, log=_stderr
            )
            found = [{"status": r.status, "detail": r.detail, **r.extra} for r in rows]
    print(json.dumps(found, indent=2))
    return 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
