"""Where lockd's time goes per mode (page fetch, parse, metadata, resolver CPU, hashing, rendering, store),
and a py-spy flame graph of a fully cached resolution.

Both run `bench/phase_worker.py` in a subprocess of the build being measured (see that module for
what each mode is and how phases are timed); this module hands it a job and turns its answer into
`Measurement` rows: one per mode, its samples carrying the per-phase seconds.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.builds import LockdBuild
from bench.cases import Case, IndexSetup, with_nonce
from bench.lockd_process import lockd_env
from bench.peers import venv_tool
from bench.timing import FAILED, Measurement, Sample, Unavailable

__all__ = ["PHASES", "median_phases", "record_flamegraph", "run_phases"]

WORKER = Path(__file__).resolve().parent / "phase_worker.py"
# The order the report shows them in; the worker's TOTAL row is the time no hook claimed.
PHASES = (
    "page fetch",
    "page parse",
    "metadata fetch",
    "metadata parse",
    "resolver CPU",
    "hashing",
    "rendering",
    "advisories",
    "store",
    "other (intake, lease, glue)",
)
WORKER_TIMEOUT = 1800.0


def _job(case: Case, index: IndexSetup, workdir: Path, modes: tuple[str, ...], times: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    # Each warm or cached mode primes once, then times `times` runs, each with an unseen input.
    fresh = sum(times + 1 for mode in modes if mode != "cold")
    job = {
        "requirements": case.requirements,
        "fresh_inputs": [with_nonce(case.requirements, 100000 + n) for n in range(1, fresh + 1)],
        "target": {"platform": case.platform, "python": case.python, "cuda": case.cuda},
        "index_url": index.pypi_url,
        "pytorch_base": index.pytorch_base,
        "workdir": str(workdir),
        "modes": list(modes),
        "times": times,
        "out": str(workdir / "phases.json"),
    }
    path = workdir / "job.json"
    path.write_text(json.dumps(job))
    return path


def _env(build: LockdBuild, index: IndexSetup) -> dict[str, str]:
    env = lockd_env("sqlite:///unused.db", index, build.root)
    env["LOCKD_LOG_LEVEL"] = "WARNING"
    return env


def run_phases(
    case: Case,
    index: IndexSetup,
    build: LockdBuild,
    workdir: Path,
    *,
    times: int,
    modes: tuple[str, ...] = ("cold", "warm", "cached"),
) -> list[Measurement]:
    """One row per mode: samples are whole ``Service.lock`` runs, each with its phases in ``extra``."""
    tool = build.tool("lockd-service")
    common: dict[str, Any] = {"section": "phases", "case": case.name, "index": index.label, "tool": tool}
    job = _job(case, index, workdir, modes, times)
    try:
        done = subprocess.run(
            [sys.executable, str(WORKER), str(job)],
            env=_env(build, index),
            cwd=build.root,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"phase worker exited {done.returncode}: {done.stderr[-1500:]}")
        answer: dict[str, Any] = json.loads((workdir / "phases.json").read_text())
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[-3000:]
        return [Measurement(mode=m, status=FAILED, detail=detail, **common) for m in modes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for mode in modes:
        runs = answer["runs"].get(mode, [])
        samples = tuple(Sample(r["wall_s"], r) for r in runs)
        error = answer["errors"].get(mode)
        extra = {"missing_hooks": answer.get("missing", []), "collector": answer.get("collector")}
        if error:
            rows.append(
                Measurement(mode=mode, samples=samples, status=FAILED, detail=error, extra=extra, **common)
            )
        else:
            rows.append(Measurement(mode=mode, samples=samples, extra=extra, **common))
    return rows


def median_phases(row: Measurement) -> dict[str, float]:
    """Median seconds per phase over the row's samples (background thread-seconds as "bg: …")."""
    names: list[str] = []
    for s in row.samples:
        for kind in ("phases", "background"):
            for name in s.extra.get(kind, {}):
                key = name if kind == "phases" else f"bg: {name}"
                if key not in names:
                    names.append(key)
    out: dict[str, float] = {}
    for key in names:
        kind, name = ("background", key[4:]) if key.startswith("bg: ") else ("phases", key)
        out[key] = statistics.median(float(s.extra.get(kind, {}).get(name, 0.0)) for s in row.samples)
    if row.samples:
        out["cpu"] = statistics.median(float(s.extra.get("cpu_s", 0.0)) for s in row.samples)
    return out


def record_flamegraph(
    case: Case, index: IndexSetup, build: LockdBuild, workdir: Path, svg: Path, *, loops: int = 15
) -> str:
    """py-spy over the phase worker resolving ``case`` fully cached ``loops`` times; returns a note.

    The worker first fills its caches (one cold and one priming run, mostly waiting on the network,
    which py-spy leaves out: idle threads are not sampled), then the cached runs dominate the graph.
    """
    try:
        py_spy = venv_tool("py-spy")
    except Unavailable as exc:
        return f"flame graph not recorded: {exc}"
    job = _job(case, index, workdir, ("cached",), loops)
    svg.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(py_spy), "record", "--rate", "200", "--format", "flamegraph", "-o", str(svg), "--",
            sys.executable, str(WORKER), str(job)]  # fmt: skip
    done = subprocess.run(
        argv, env=_env(build, index), cwd=build.root, capture_output=True, text=True,
        timeout=WORKER_TIMEOUT, check=False,
    )  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0 or not svg.is_file():
        return f"flame graph not recorded: py-spy exited {done.returncode}: {(done.stderr or done.stdout)[-600:]}"
    return f"flame graph of {case.name} fully cached ({loops} runs after priming, {build.description}): {svg}"
