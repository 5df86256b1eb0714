"""``python -m bench run``: every benchmark section in one run, a Markdown report and a JSON file.

    python -m bench run [--cases NAME ...] [--real-pypi] [--repeat N] [--out bench/results/<name>.json]
                        [--sections resolution,bytes,serving,scaling,issue16] [--tools lockd-http,...,uv,pip-compile]
                        [--lockd-rev REV] [--baseline-rev REV]   (or --lockd-rev BASE --lockd-rev HEAD)

Fixture-index cases (``bench/cases``) always run, against a fixture index with ``--latency-ms``
(20 ms) injected per request; ``--real-pypi`` adds ``../shared/bench/cases`` on real PyPI and the
pin-scaling sets. A piece of lockd that is not there yet becomes a "not available" row. The
``issue16`` section (`bench.issue16`) ends the report with one VERDICT line per target of issue 16,
for the build under test and, with ``--baseline-rev``, for the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.builds import LockdBuild, current_build, export_rev, exported_build
from bench.cases import FIXTURE_CASES, SHARED_CASES, Case, load_cases
from bench.fetching import bytes_rows
from bench.indexes import FixtureIndexProcess, fixture_setup, pypi_setup
from bench.issue16 import Issue16Options, run_issue16
from bench.issue16_report import issue16_markdown, issue16_verdicts
from bench.peers import venv_tool
from bench.report import markdown, verdicts
from bench.resolution import TOOLS, run_case
from bench.scaling import run_drift_scaling, run_pin_scaling
from bench.serving import run_serving
from bench.timing import NOT_AVAILABLE, Measurement, Unavailable, load_note, wait_for_quiet

__all__ = ["main"]

SECTIONS = ("resolution", "bytes", "serving", "scaling", "issue16")
RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="lockd benchmarks against uv and pip-compile"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks, print the tables, write JSON")
    run.add_argument("--cases", nargs="*", default=None, help="case names (fixture and shared); default: all")
    run.add_argument(
        "--real-pypi", action="store_true", help="also run ../shared/bench/cases and pin scaling on real PyPI"
    )
    run.add_argument("--repeat", type=int, default=3, help="runs per tool and mode (medians are reported)")
    run.add_argument(
        "--out", type=Path, default=None, help="JSON output (default bench/results/<timestamp>.json)"
    )
    run.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    run.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ",".join(TOOLS))
    run.add_argument(
        "--latency-ms", type=float, default=20.0, help="latency the fixture index adds to each request"
    )
    run.add_argument("--serving-case", default="fx-api", help="the fixture case whose stored lock is served")
    run.add_argument("--serving-duration", type=float, default=10.0, help="seconds of wrk per measurement")
    run.add_argument("--serving-connections", default="4,16", help="wrk connections, comma-separated")
    run.add_argument("--serving-workers", default="1,2")
    run.add_argument("--pin-sizes", default="10,50,100,200")
    run.add_argument("--drift-sizes", default="10,100,1000")
    run.add_argument(
        "--drift-cases",
        default="all",
        help="fixture cases stored in turn for drift scaling (comma-separated, or all)",
    )
    run.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    run.add_argument(
        "--quiet-load",
        type=float,
        default=0.5,
        help="wait for the 1-minute load average to fall to this before measuring (the notes say if it did not)",
    )
    run.add_argument(
        "--quiet-wait", type=float, default=180.0, help="seconds to wait for --quiet-load at most"
    )
    run.add_argument(
        "--lockd-rev",
        action="append",
        default=None,
        help="benchmark a committed revision (e.g. HEAD): run everything from a `git archive` export of it, "
        "not from the working tree other engineers are editing; given twice (BASE, then HEAD), "
        "the first is the baseline (--baseline-rev)",
    )
    run.add_argument(
        "--baseline-rev",
        default=None,
        help="issue16 section: also measure lockd from an export of this revision, interleaved run by run, "
        "so before and after come from one run on one machine",
    )
    run.add_argument(
        "--phase-repeat", type=int, default=1, help="issue16: Service.lock runs per mode for phases"
    )
    run.add_argument("--startup-repeat", type=int, default=5, help="issue16: CLI start-up measurements")
    run.add_argument(
        "--drift-locks", type=int, default=10_000, help="issue16: stored locks of the drift run (0: skip)"
    )
    run.add_argument(
        "--drift-timeout", type=float, default=360.0, help="issue16: seconds before a drift run is stopped"
    )
    run.add_argument("--no-flamegraph", action="store_true", help="issue16: skip the py-spy flame graph")
    return parser


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _versions() -> dict[str, str]:
    found: dict[str, str] = {"python": sys.version.split()[0]}
    for name, argv in (
        ("uv", ["uv", "--version"]),
        ("pip-compile", ["pip-compile", "--version"]),
        ("wrk", ["wrk", "-v"]),
    ):
        try:
            tool = str(venv_tool(argv[0]))
            done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, timeout=30, check=False)
            found[name] = (done.stdout or done.stderr).strip().splitlines()[0]
        except (Unavailable, OSError, IndexError) as exc:
            found[name] = f"unavailable ({exc})"
    return found


def _git_head() -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    return done.stdout.strip()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip() in TOOLS)
    started = dt.datetime.now(dt.UTC)
    rev = os.environ.get("LOCKD_BENCH_REV")
    quiet = wait_for_quiet(args.quiet_load, args.quiet_wait, log)
    notes = [
        f"start: {load_note()} ({quiet})",
        f"lockd from {rev}" if rev else f"lockd from the working tree at {_git_head()}",
    ]
    workroot = Path(tempfile.mkdtemp(prefix="lockd-bench-"))
    rows: list[Measurement] = []

    fixture_cases = load_cases(FIXTURE_CASES, "fixture", args.cases)
    shared_cases = load_cases(SHARED_CASES, "pypi", args.cases) if args.real_pypi else []
    torch_cases = {c.name for c in [*fixture_cases, *shared_cases] if c.is_torch}
    fixture: FixtureIndexProcess | None = None
    try:
        try:
            fixture = FixtureIndexProcess.start(args.latency_ms)
            log(f"fixture index at {fixture.base} (+{args.latency_ms:g} ms per request)")
        except Unavailable as exc:
            notes.append(f"fixture index not available: {exc}")
        if "resolution" in sections or "bytes" in sections:
            use_tools = tools if "resolution" in sections else ("lockd-inproc",)
            times = args.repeat if "resolution" in sections else 1
            rows += _resolution(
                fixture_cases,
                shared_cases,
                fixture,
                workroot,
                tools=use_tools,
                times=times,
                notes=notes,
                log=log,
            )
        if "bytes" in sections:
            rows += bytes_rows([r for r in rows if r.section == "resolution"])
        if "serving" in sections:
            rows += _serving(args, fixture, workroot, log)
        if "scaling" in sections:
            rows += _scaling(args, fixture, workroot, notes, log)
        if "issue16" in sections:
            builds = [current_build()]
            if args.baseline_rev:
                builds.append(_baseline(args.baseline_rev, workroot))
            rows += _issue16(
                args,
                fixture,
                fixture_cases=fixture_cases,
                shared_cases=shared_cases,
                builds=builds,
                workroot=workroot,
                notes=notes,
            )
    finally:
        if fixture is not None:
            fixture.stop()
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    notes.append(f"end: {load_note()}")
    suffixes = list(dict.fromkeys([""] + (["@base"] if args.baseline_rev else [])))
    if sections - {"issue16"}:
        report = markdown(rows, torch_cases, notes)
    else:  # the issue-8 tables and targets would only say "not measured"
        report = "\n".join(["Notes:", *[f"- {n}" for n in notes], ""])
    if "issue16" in sections:
        report += "\n" + issue16_markdown(rows, suffixes)
    print(report)
    out = args.out or RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "command": sys.argv,
        "versions": _versions(),
        "notes": notes,
        "torch_cases": sorted(torch_cases),
        "targets": [v.to_json() for v in verdicts(rows, torch_cases)],
        "issue16_verdicts": [v.to_json() for v in issue16_verdicts(rows, suffixes)]
        if "issue16" in sections
        else [],
        "measurements": [r.to_json() for r in rows],
        "report_markdown": report,
    }
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    return 0


def _resolution(
    fixture_cases: list[Case],
    shared_cases: list[Case],
    fixture: FixtureIndexProcess | None,
    workroot: Path,
    *,
    tools: tuple[str, ...],
    times: int,
    notes: list[str],
    log: Callable[[str], None],
) -> list[Measurement]:
    rows: list[Measurement] = []
    if fixture is not None:
        setup = fixture_setup(fixture)
        for case in fixture_cases:
            log(f"resolution: {case.name} on {setup.label}")
            rows += run_case(case, setup, workroot, times=times, tools=tools, fixture=fixture, log=log)
    else:
        for case in fixture_cases:
            rows.append(Measurement("resolution", case.name, "fixture", "all", "cold", status=NOT_AVAILABLE,
                                    detail="fixture index not available"))  # fmt: skip
    if shared_cases:
        setup = pypi_setup(fixture)
        if any(c.cuda for c in shared_cases):
            notes.append(
                "real-PyPI cases with a CUDA variant take the torch family from the fixture index's PyTorch side "
                "(download.pytorch.org is unreachable here); pip-compile, which cannot route per project, "
                "resolves them from PyPI alone (PyPI's Linux torch 2.5.1 is the cu124 build)"
            )
        for case in shared_cases:
            log(f"resolution: {case.name} on {setup.label}")
            rows += run_case(case, setup, workroot, times=times, tools=tools, fixture=fixture, log=log)
    return rows


def _serving(
    args: argparse.Namespace, fixture: FixtureIndexProcess | None, workroot: Path, log: Callable[[str], None]
) -> list[Measurement]:
    cases = load_cases(FIXTURE_CASES, "fixture", [args.serving_case])
    if fixture is None or not cases:
        return [Measurement("serving", args.serving_case, "fixture", "wrk", "hit", status=NOT_AVAILABLE,
                            detail="fixture index or serving case not available")]  # fmt: skip
    return run_serving(
        cases[0],
        fixture_setup(fixture),
        workroot / "serving",
        duration=args.serving_duration,
        connections=_ints(args.serving_connections),
        workers_list=_ints(args.serving_workers),
        log=log,
    )


def _scaling(
    args: argparse.Namespace,
    fixture: FixtureIndexProcess | None,
    workroot: Path,
    notes: list[str],
    log: Callable[[str], None],
) -> list[Measurement]:
    rows: list[Measurement] = []
    if args.real_pypi:
        log("scaling: pins on real PyPI")
        rows += run_pin_scaling(
            pypi_setup(fixture), workroot / "pins", sizes=_ints(args.pin_sizes), times=args.repeat, log=log
        )
    else:
        notes.append("pin scaling needs --real-pypi (the fixture index has too few projects for 200 pins)")
    names = None if args.drift_cases == "all" else args.drift_cases.split(",")
    cases = load_cases(FIXTURE_CASES, "fixture", names)
    if fixture is not None and cases:
        log("scaling: drift run against stored locks")
        rows += run_drift_scaling(
            cases, fixture_setup(fixture), workroot / "drift", sizes=_ints(args.drift_sizes), log=log
        )
    return rows


def _issue16(
    args: argparse.Namespace,
    fixture: FixtureIndexProcess | None,
    *,
    fixture_cases: list[Case],
    shared_cases: list[Case],
    builds: list[LockdBuild],
    workroot: Path,
    notes: list[str],
) -> list[Measurement]:
    if args.real_pypi:
        sized = sorted(
            load_cases(FIXTURE_CASES, "pypi", args.cases), key=lambda c: int(c.name.split("-")[-1])
        )
        cases, index = [*shared_cases, *sized], pypi_setup(fixture)
    elif fixture is not None:
        cases, index = fixture_cases, fixture_setup(fixture)
    else:
        notes.append("issue16: no fixture index and no --real-pypi: nothing to resolve")
        cases, index = [], pypi_setup(None)
    serving = load_cases(FIXTURE_CASES, "fixture", [args.serving_case])
    drift_names = None if args.drift_cases == "all" else args.drift_cases.split(",")
    options = Issue16Options(
        times=args.repeat,
        phase_times=args.phase_repeat,
        startup_times=args.startup_repeat,
        drift_locks=args.drift_locks,
        drift_timeout=args.drift_timeout,
        serving_duration=args.serving_duration,
        serving_connections=_ints(args.serving_connections),
        # Beside the JSON: a `--lockd-rev` re-run passes the invoking checkout's results path as
        # --out, and its own RESULTS is inside the export, which is deleted when the run ends.
        flamegraph_dir=None
        if args.no_flamegraph
        else (Path(args.out).resolve().parent if args.out else RESULTS),
    )
    return run_issue16(
        cases,
        index,
        fixture=None if fixture is None else fixture_setup(fixture),
        serving_case=serving[0] if serving else None,
        drift_cases=load_cases(FIXTURE_CASES, "fixture", drift_names),
        builds=builds,
        workroot=workroot / "issue16",
        options=options,
        notes=notes,
        log=log,
    )


def _baseline(rev: str, workroot: Path) -> LockdBuild:
    """The `--baseline-rev` build: exported by the checkout before a `--lockd-rev` re-run, else now."""
    root = os.environ.get("LOCKD_BENCH_BASELINE_ROOT")
    if root:
        return LockdBuild(
            suffix="@base", root=Path(root), description=os.environ["LOCKD_BENCH_BASELINE_DESC"]
        )
    return exported_build(rev, workroot)


def _without(argv: list[str], *options: str) -> list[str]:
    """``argv`` without ``--option VALUE`` / ``--option=VALUE`` for each of ``options``."""
    rest: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not any(arg.startswith(f"{o}=") for o in options):
            rest.append(arg)
    return rest


def _reexec_from(rev: str, argv: list[str], baseline: str | None = None) -> int:
    """Export ``rev`` with ``git archive`` and run this same command from there."""
    export, sha = export_rev(rev)
    env = dict(os.environ, PYTHONPATH=str(export), LOCKD_BENCH_SHARED_CASES=str(SHARED_CASES))
    rest = _without(argv, "--lockd-rev", "--baseline-rev")
    base_export: Path | None = None
    if baseline is not None:
        base_export, base_sha = export_rev(baseline)
        env["LOCKD_BENCH_BASELINE_ROOT"] = str(base_export)
        env["LOCKD_BENCH_BASELINE_DESC"] = f"{baseline} = {base_sha} (exported to {base_export})"
        rest += ["--baseline-rev", baseline]
    if "--out" not in rest:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        rest += ["--out", str(RESULTS / f"{stamp}.json")]
    else:
        at = rest.index("--out")
        rest[at + 1] = str(Path(rest[at + 1]).resolve())
    env["LOCKD_BENCH_REV"] = f"{rev} = {sha} (exported to {export})"
    log(f"running from {env['LOCKD_BENCH_REV']}")
    done = subprocess.run([sys.executable, "-m", "bench", *rest], cwd=export, env=env, check=False)
    shutil.rmtree(export, ignore_errors=True)
    if base_export is not None:
        shutil.rmtree(base_export, ignore_errors=True)
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(raw)
    if args.command == "run" and args.lockd_rev:
        revs: list[str] = args.lockd_rev
        baseline = revs[0] if len(revs) > 1 else args.baseline_rev
        return _reexec_from(revs[-1], raw, baseline)
    if args.command == "run":
        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
