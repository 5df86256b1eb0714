"""How cost grows: resolution time against the number of pins, drift-run time against stored locks.

Pin scaling uses requirement sets of real projects on real PyPI (the fixture index has about 70
projects, too few for 200 pins); the sets were chosen so every project has wheels (no sdist needs
building) and give about 10, 50, 100 and 200 pins. lockd (in-process, cold and warm) and uv
(cold and warm) resolve each set for linux_x86_64, Python 3.11.

Drift scaling stores N distinct inputs of the fixture stacks in turn (N locks, each resolved from a
warm cache by lockd's service in process), then times ``python -m lockd drift run`` over them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cases import Case, IndexSetup, with_nonce
from bench.lockd_process import ROOT, lockd_available, lockd_env
from bench.resolution import run_case
from bench.timing import FAILED, NOT_AVAILABLE, Measurement, Sample, Unavailable, load_note

if TYPE_CHECKING:  # lockd's database stack is imported when a run needs it
    from lockd.service import Service

__all__ = ["PIN_SETS", "pin_cases", "run_drift_scaling", "run_pin_scaling"]

_SET_10 = ("requests", "click", "pyyaml", "jinja2", "attrs")
_SET_50 = (*_SET_10, "rich", "pydantic", "fastapi", "uvicorn", "httpx", "sqlalchemy", "alembic", "pytest", "black",
           "tqdm", "python-dateutil", "cryptography", "pyjwt", "tenacity")  # fmt: skip
_SET_100 = (*_SET_50, "flask", "django", "celery", "sphinx", "pandas", "matplotlib", "scikit-learn", "mypy", "isort",
            "flake8", "coverage", "tox", "pre-commit")  # fmt: skip
_SET_200 = (*_SET_100, "jupyter", "dask[complete]", "streamlit")

# nominal size → top-level requirements (the actual pin count is measured and reported).
PIN_SETS: dict[int, tuple[str, ...]] = {10: _SET_10, 50: _SET_50, 100: _SET_100, 200: _SET_200}


def pin_cases(sizes: tuple[int, ...]) -> list[Case]:
    return [
        Case(
            name=f"pins-{size}",
            requirements="\n".join(PIN_SETS[size]) + "\n",
            platform="linux_x86_64",
            python="3.11",
            cuda=None,
            source="pypi",
        )
        for size in sizes
        if size in PIN_SETS
    ]


def run_pin_scaling(
    index: IndexSetup,
    workroot: Path,
    *,
    sizes: tuple[int, ...],
    times: int,
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    rows = []
    for case in pin_cases(sizes):
        for row in run_case(case, index, workroot, times=times, tools=("lockd-inproc", "uv"), log=log):
            rows.append(
                Measurement(
                    "scaling-pins",
                    row.case,
                    row.index,
                    row.tool,
                    row.mode,
                    row.samples,
                    row.status,
                    row.detail,
                    row.extra,
                )
            )
    return rows


def _drift_run(database_url: str, index: IndexSetup) -> dict[str, object]:
    env = lockd_env(database_url, index)
    done = subprocess.run(
        [sys.executable, "-m", "lockd", "drift", "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode not in (0, 3):  # 3: drift found (with --fail-on), a result, not a failure
        raise RuntimeError(
            f"lockd drift run exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"
        )
    try:
        run = json.loads(done.stdout)
    except ValueError:
        return {"exit": done.returncode, "output_tail": done.stdout[-300:]}
    return {
        "exit": done.returncode,
        "status": run.get("status"),
        "locks_checked": run.get("locks_checked"),
        "run_duration_s": run.get("duration_seconds"),  # the run itself, without process start
        "counts": run.get("counts"),
    }


def _store_locks(service: Service, cases: list[Case], first: int, last: int) -> None:
    """Locks for inputs ``first..last-1``, cycling through ``cases`` (the first round as written)."""
    for n in range(first, last):
        case = cases[n % len(cases)]
        target = {"platform": case.platform, "python": case.python, "cuda": case.cuda}
        text = case.requirements if n < len(cases) else with_nonce(case.requirements, n)
        service.lock(service.build_request(requirements=text, target=target))


def run_drift_scaling(
    cases: list[Case],
    index: IndexSetup,
    workdir: Path,
    *,
    sizes: tuple[int, ...],
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    """Store N locks (distinct inputs of ``cases`` in turn), then time one ``lockd drift run`` over them.

    The locks are stored in process through `lockd.service.Service` (warm caches: about 20 ms a
    lock), which is setup; only the drift run, a CLI subprocess as cron would start it, is timed.
    """
    common: dict[str, Any] = {
        "section": "scaling-drift",
        "index": index.label,
        "tool": "lockd drift run",
        "mode": "warm",
    }
    rows: list[Measurement] = []
    try:
        lockd_available("drift", "service", "cli", "config")
        # lockd's pieces land one by one: imported when used, so a missing one is a row, not a crash.
        from lockd.config import load_settings  # noqa: PLC0415
        from lockd.service import Service  # noqa: PLC0415

        directory = workdir / "drift"
        directory.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{directory}/lockd.db"
        settings = load_settings(
            database_url=url, index_url=index.pypi_url, pytorch_index_url=index.pytorch_base
        )
        service = Service.open(settings)
        try:
            service.migrate()
            stored = 0
            for size in sorted(sizes):
                started = time.perf_counter()
                _store_locks(service, cases, stored, size)
                stored = size
                log(f"  drift: {size} locks stored ({time.perf_counter() - started:.1f}s); timing drift run")
                if size == min(sizes):
                    _drift_run(url, index)  # untimed: fills the caches a scheduled run finds warm
                load = load_note()
                start = time.perf_counter()
                extra = _drift_run(url, index)
                seconds = time.perf_counter() - start
                if extra.get("locks_checked", size) != size or extra.get("status", "complete") != "complete":
                    raise RuntimeError(f"drift run over {size} locks did not check them all: {extra}")
                extra.update({"locks": size, "load": load, "setup_s": round(start - started, 2)})
                rows.append(
                    Measurement(
                        case=f"{size} locks", samples=(Sample(seconds, extra),), extra=extra, **common
                    )
                )
        finally:
            service.close()
    except Unavailable as exc:
        rows.append(Measurement(case="drift", status=NOT_AVAILABLE, detail=str(exc), **common))
    except Exception as exc:
        rows.append(
            Measurement(case="drift", status=FAILED, detail=f"{type(exc).__name__}: {exc}"[-3000:], **common)
        )
    return rows
