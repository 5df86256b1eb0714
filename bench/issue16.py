"""The issue-16 section: every target of the issue measured in one pass, for one or two lockd builds.

Per case (the real-PyPI cases and the generated ``bench/cases/pypi-N`` stacks with ``--real-pypi``,
else the fixture cases): uv and lockd side by side on the same footing (`bench.footing`), then where
lockd's time goes per mode (`bench.phases`, on the ``pypi-N`` stacks). Then the CLI's start-up, a
py-spy flame graph of the fully cached ``pypi-200`` case, PostgreSQL cache hits with 2 workers
(`bench.serving`) and a warm drift run over 10,000 stored locks (`bench.drift_fleet`).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.builds import LockdBuild
from bench.cases import Case, IndexSetup
from bench.drift_fleet import run_drift_fleet
from bench.footing import cli_has_cache_dir, cli_startup, run_footing
from bench.phases import record_flamegraph, run_phases
from bench.serving import run_serving
from bench.timing import NOT_AVAILABLE, Measurement

__all__ = ["SERVING_SECTION", "Issue16Options", "run_issue16"]

SERVING_SECTION = "issue16-serving"

FLAMEGRAPH_CASE = "pypi-200"
_SIZED = re.compile(r"^pypi-\d+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue16Options:
    times: int  # runs per tool and mode (medians)
    phase_times: int  # Service.lock runs per mode for the phase breakdown
    startup_times: int
    drift_locks: int
    drift_timeout: float
    serving_duration: float
    serving_connections: tuple[int, ...]
    flamegraph_dir: Path | None  # None: no flame graph


def run_issue16(
    cases: list[Case],
    index: IndexSetup,
    *,
    fixture: IndexSetup | None,
    serving_case: Case | None,
    drift_cases: list[Case],
    builds: list[LockdBuild],
    workroot: Path,
    options: Issue16Options,
    notes: list[str],
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    rows: list[Measurement] = []
    cache_dir: dict[str, bool] = {}
    for build in builds:
        cache_dir[build.suffix] = has = cli_has_cache_dir(build)
        notes.append(f"lockd{build.suffix} = {build.description}")
        if not has:
            notes.append(f"lockd{build.suffix}: `lockd lock` has no --cache-dir: CLI cold runs without a "
                         "persistent cache and CLI warm is not available")  # fmt: skip
    log("issue16: CLI start-up")
    for build in builds:
        rows.append(cli_startup(build, workroot / "startup", times=options.startup_times,
                                cache_dir=cache_dir[build.suffix]))  # fmt: skip
    sized = [c for c in cases if _SIZED.match(c.name)]
    for case in cases:
        log(f"issue16: {case.name} on {index.label}")
        rows += run_footing(
            case, index, builds, workroot, times=options.times, cli_cache_dir=cache_dir, log=log
        )
        if case in sized or not sized:
            for build in builds:
                log(f"  {case.name}: phases of {build.tool('lockd')} ×{options.phase_times}")
                rows += run_phases(case, index, build, workroot / f"phases-{case.name}{build.suffix}",
                                   times=options.phase_times)  # fmt: skip
    flame = next((c for c in cases if c.name == FLAMEGRAPH_CASE), None)
    if options.flamegraph_dir is not None and flame is not None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        svg = options.flamegraph_dir / f"{stamp}-{flame.name}-cached.svg"
        log(f"issue16: py-spy flame graph of {flame.name} fully cached")
        notes.append(record_flamegraph(flame, index, builds[0], workroot / "flame", svg))
    if fixture is not None and serving_case is not None:
        for build in builds:
            log(f"issue16: serving on PostgreSQL, 2 workers ({build.tool('lockd')})")
            served = run_serving(serving_case, fixture, workroot / f"serving{build.suffix}",
                                duration=options.serving_duration, connections=options.serving_connections,
                                workers_list=(2,), databases=("postgresql",), root=build.root,
                                suffix=build.suffix, log=log)  # fmt: skip
            # Its own section: the issue-8 serving table and targets judge other configurations.
            rows += [replace(r, section=SERVING_SECTION) for r in served]
        if options.drift_locks > 0 and drift_cases:
            rows += run_drift_fleet(drift_cases, fixture, builds, workroot / "drift", locks=options.drift_locks,
                                    timeout=options.drift_timeout, log=log)  # fmt: skip
    else:
        rows.append(Measurement(SERVING_SECTION, "postgresql, 2 workers", "fixture", "wrk", "hit", status=NOT_AVAILABLE,
                                detail="fixture index not available"))  # fmt: skip
    shutil.rmtree(workroot / "startup", ignore_errors=True)
    return rows
