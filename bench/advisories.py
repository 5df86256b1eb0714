"""Advisory figures: which advisories the bench stacks' locks meet, and what the check adds to drift.

``python -m bench.advisories [--locks N] [--shared] [--advisories DIR]``

1. Each case of ``bench/cases`` (fixture index) and, with ``--shared``, of ``../shared/bench/cases``
   (real PyPI; the torch family from the fixture index) is locked by lockd's service, and the lock
   is checked against the advisory directory (default: the PyPA snapshot in ``../shared/advisories``).
2. N distinct inputs of the fixture cases are stored, then one drift run over them is timed with no
   advisory source and with the directory (its load included: a ``lockd drift run`` from cron
   starts cold), each after an untimed run that warms the index caches. The per-lock cost of the
   check alone is timed too, so the figure for other N is ``load + N × per lock``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cases import FIXTURE_CASES, SHARED_CASES, Case, IndexSetup, load_cases, with_nonce
from bench.indexes import FixtureIndexProcess, fixture_setup, pypi_setup
from lockd.advisories import load_advisory_directory, vulnerabilities
from lockd.config import load_settings
from lockd.drift_runs import DriftRuns
from lockd.lock import Lock
from lockd.service import Service

__all__ = ["drift_cost", "match_cases"]

DEFAULT_ADVISORIES = Path(__file__).resolve().parent.parent.parent / "shared" / "advisories"


def _service(database: Path, index: IndexSetup, **overrides: Any) -> Service:
    settings = load_settings(
        database_url=f"sqlite:///{database}",
        index_url=index.pypi_url,
        pytorch_index_url=index.pytorch_base,
        log_level="WARNING",
        **overrides,
    )
    service = Service.open(settings)
    service.migrate()
    return service


def _lock(service: Service, case: Case, requirements: str | None = None) -> Lock:
    target = {"platform": case.platform, "python": case.python, "cuda": case.cuda}
    request = service.build_request(requirements=requirements or case.requirements, target=target)
    result = service.lock(request)
    return Lock.from_json(service.lock_file(result.lock_digest, "json").content)


def match_cases(
    cases: list[Case], index: IndexSetup, advisories: Path, workdir: Path
) -> list[dict[str, Any]]:
    """Per case: pins, advisories matched (by package), and how many have a fix within the requirements."""
    directory = load_advisory_directory(advisories)
    service = _service(workdir / f"match-{index.pypi_is_fixture}.db", index)
    rows: list[dict[str, Any]] = []
    try:
        for case in cases:
            try:
                lock = _lock(service, case)
            except Exception as exc:
                rows.append({"case": case.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            found = vulnerabilities(lock, [directory])
            by_package: dict[str, list[str]] = {}
            for finding in found:
                by_package.setdefault(f"{finding.package} {finding.version}", []).append(finding.advisory_id)
            rows.append(
                {
                    "case": case.name,
                    "index": index.label,
                    "pins": len(lock.packages),
                    "advisories": len(found),
                    "fix_within_requirements": sum(f.fix_within_requirements for f in found),
                    "by_package": by_package,
                }
            )
    finally:
        service.close()
    return rows


def _timed_run(service: Service) -> float:
    started = time.perf_counter()
    run = DriftRuns(service).run(trigger="bench")
    assert run is not None and run.status == "complete", run
    return time.perf_counter() - started


def drift_cost(
    cases: list[Case], index: IndexSetup, advisories: Path, workdir: Path, locks: int
) -> dict[str, Any]:
    """One drift run over `locks` stored locks without and with the advisory directory."""
    database = workdir / f"drift-{locks}.db"
    plain = _service(database, index)
    stored: list[Lock] = []
    try:
        for n in range(locks):
            case = cases[n % len(cases)]
            stored.append(
                _lock(plain, case, case.requirements if n < len(cases) else with_nonce(case.requirements, n))
            )
        _timed_run(plain)  # untimed: warms the index caches both timed runs then share
        without = _timed_run(plain)
    finally:
        plain.close()
    checked = _service(database, index, advisories_dir=advisories)
    try:
        with_advisories = _timed_run(checked)  # cold: the directory is read inside the run
        warm = _timed_run(checked)
        started = time.perf_counter()
        index_loaded = load_advisory_directory(advisories)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        matched = sum(len(vulnerabilities(lock, [index_loaded])) for lock in stored)
        per_lock = (time.perf_counter() - started) / len(stored)
    finally:
        checked.close()
    return {
        "locks": locks,
        "drift_run_s_without": round(without, 2),
        "drift_run_s_with_cold": round(with_advisories, 2),
        "drift_run_s_with_warm": round(warm, 2),
        "directory_load_s": round(load_seconds, 2),
        "check_ms_per_lock": round(per_lock * 1000, 3),
        "advisories_matched": matched,
        "estimate_added_s_for_1000_locks": round(load_seconds + 1000 * per_lock, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--locks", type=int, default=200)
    parser.add_argument("--shared", action="store_true", help="also the shared cases, on real PyPI")
    parser.add_argument("--advisories", type=Path, default=DEFAULT_ADVISORIES)
    args = parser.parse_args()
    fixture_cases = load_cases(FIXTURE_CASES, "fixture")
    with FixtureIndexProcess.start(latency_ms=0) as index, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        report: dict[str, Any] = {
            "matched": match_cases(fixture_cases, fixture_setup(index), args.advisories, workdir)
        }
        if args.shared:
            shared = load_cases(SHARED_CASES, "pypi")
            report["matched"] += match_cases(shared, pypi_setup(index), args.advisories, workdir)
        report["drift"] = drift_cost(
            fixture_cases, fixture_setup(index), args.advisories, workdir, args.locks
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
