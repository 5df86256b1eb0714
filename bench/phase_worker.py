"""Where a lockd resolution spends its time, by phase: runs inside the interpreter of one lockd tree.

    PYTHONPATH=<lockd tree> python bench/phase_worker.py JOB.json

Started as a script by `bench.phases` so that ``lockd`` is whichever tree ``PYTHONPATH`` names (a
`--baseline-rev` export or this tree); it imports nothing from ``bench`` for the same reason.
Each run is ``Service.lock`` in process on SQLite, the path ``POST /lock`` takes minus HTTP:

- cold: a new database and service (empty caches);
- warm: a service with ``page_ttl=0`` on the last cold database, primed once (metadata cached,
  every page refetched), then fresh inputs;
- cached: a service with the default page TTL on that database, primed once, then fresh inputs.

The worker tunes the cycle collector as `lockd serve` and `lockd lock` do before their first
resolution (`lockd.collector.tune_collector`, where the tree has it), after its imports and hooks:
without it every fifth or so fully cached pypi-300 run took twice the others (a full collection
over the caches, about 100 ms), a cost no lockd process pays. The thresholds used are reported.

Phases are timed by wrapping lockd functions (never changing what they do); a phase's time excludes
the phases it calls, so on the resolving thread they add up to the run's wall clock. Time that
prefetch threads spend is reported apart ("background", thread-seconds). A function a revision
does not have is listed in ``missing`` and its time stays with its caller.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import shutil
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Started as a script, sys.path[0] is bench/, whose module names (profile, timing…) shadow the stdlib.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]


# (phase, module, attribute path, kind): kind "call" wraps a function, "cm" a context manager factory.
HOOKS: tuple[tuple[str, str, str, str], ...] = (
    ("page fetch", "lockd.index.client", "IndexClient.project_page", "call"),
    ("page parse", "lockd.index.pages", "parse_page", "call"),
    ("metadata fetch", "lockd.index.client", "IndexClient.fetch_metadata", "call"),
    ("metadata parse", "lockd.resolver.metadata", "MetadataReader.parse", "call"),
    ("hashing", "lockd.index.client", "IndexClient.file_sha256", "call"),
    ("resolver CPU", "lockd.service", "timed_resolve", "call"),
    ("rendering", "lockd.service", "render_files", "call"),
    ("advisories", "lockd.advisory_check", "AdvisoryCheck.screen", "call"),
    ("store", "lockd.service", "transaction", "cm"),
    ("store", "lockd.service", "Service.flush_metadata", "call"),
)
TOTAL = "other (intake, lease, glue)"


class PhaseClock:
    """Exclusive time per phase: on the resolving thread, and summed over background threads."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.main_thread = threading.get_ident()
        self.main: dict[str, float] = defaultdict(float)
        self.background: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        with self._lock:
            self.main.clear()
            self.background.clear()
            self.calls.clear()

    @contextlib.contextmanager
    def span(self, phase: str) -> Iterator[None]:
        stack: list[float] = self._local.__dict__.setdefault("stack", [])
        start = time.perf_counter()
        stack.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = stack.pop()
            if stack:
                stack[-1] += elapsed
            own = elapsed - inner
            with self._lock:
                target = self.main if threading.get_ident() == self.main_thread else self.background
                target[phase] += own
                self.calls[phase] += 1

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.span(phase):
                return fn(*args, **kwargs)

        return timed

    def wrap_cm(self, phase: str, factory: Callable[..., Any]) -> Callable[..., Any]:
        @contextlib.contextmanager
        @functools.wraps(factory)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with self.span(phase), factory(*args, **kwargs) as value:
                yield value

        return timed


def install(clock: PhaseClock) -> list[str]:
    """Wraps every hook lockd has; returns the ones it does not."""
    missing: list[str] = []
    for phase, module_name, path, kind in HOOKS:
        try:
            owner: Any = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for part in parents:
                owner = getattr(owner, part)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{path} ({phase})")
            continue
        wrapper = clock.wrap_cm if kind == "cm" else clock.wrap
        setattr(owner, name, wrapper(phase, original))
    return missing


def _tune_collector_as_lockd_does() -> dict[str, Any]:
    """The collector settings the tree's processes use before their first resolution, applied here."""
    try:
        from lockd.collector import tune_collector  # noqa: PLC0415
    except ImportError:  # a revision from before the tuning: its processes ran on the defaults
        return {"tuned": False, "threshold": list(gc.get_threshold())}
    tune_collector()
    return {"tuned": True, "threshold": list(gc.get_threshold())}


def main(argv: list[str]) -> int:
    job: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    clock = PhaseClock()
    missing = install(clock)
    from lockd.config import load_settings  # noqa: PLC0415  (after the hooks are in place)
    from lockd.service import Service  # noqa: PLC0415

    collector = _tune_collector_as_lockd_does()
    workdir = Path(job["workdir"])
    target = job["target"]
    text: str = job["requirements"]
    times = int(job.get("times", 3))
    # Inputs never seen before, made by the bench (`bench.cases.with_nonce`): one per primed or timed run.
    fresh_inputs: Iterator[str] = iter(job["fresh_inputs"])
    result: dict[str, Any] = {"missing": missing, "runs": {}, "errors": {}, "collector": collector}

    def open_service(database: Path, page_ttl: float | None) -> Any:
        overrides: dict[str, Any] = {
            "database_url": f"sqlite:///{database}",
            "index_url": job["index_url"],
            "pytorch_index_url": job["pytorch_base"],
        }
        if page_ttl is not None:
            overrides["page_ttl"] = page_ttl
        service = Service.open(load_settings(**overrides))
        service.migrate()
        return service

    def one(service: Any, body: str) -> dict[str, Any]:
        clock.reset()
        cpu, start = time.process_time(), time.perf_counter()
        with clock.span(TOTAL):
            outcome = service.lock(service.build_request(requirements=body, target=target))
        wall = time.perf_counter() - start
        stats = getattr(outcome, "stats", None)
        return {
            "wall_s": wall,
            "cpu_s": time.process_time() - cpu,
            "phases": dict(clock.main),
            "background": dict(clock.background),
            "calls": dict(clock.calls),
            "pins": getattr(stats, "packages", None),
            "requests": getattr(stats, "requests", None),
            "bytes_fetched": getattr(stats, "bytes_fetched", None),
        }

    def fresh() -> str:
        return next(fresh_inputs)

    last_db: Path | None = None
    for mode in job["modes"]:
        runs: list[dict[str, Any]] = []
        try:
            if mode == "cold":
                for i in range(times):
                    directory = workdir / f"cold-{i}"
                    shutil.rmtree(directory, ignore_errors=True)
                    directory.mkdir(parents=True)
                    service = open_service(directory / "lockd.db", None)
                    try:
                        runs.append(one(service, text))
                    finally:
                        service.close()
                    last_db = directory / "lockd.db"
            else:
                if last_db is None:  # no cold run before: fill a database, untimed
                    (workdir / "prime").mkdir(parents=True, exist_ok=True)
                    last_db = workdir / "prime" / "lockd.db"
                    service = open_service(last_db, None)
                    service.lock(service.build_request(requirements=text, target=target))
                    service.close()
                service = open_service(last_db, 0.0 if mode == "warm" else None)
                try:
                    service.lock(service.build_request(requirements=fresh(), target=target))  # primes
                    for _ in range(times):
                        runs.append(one(service, fresh()))
                finally:
                    service.close()
        except Exception as exc:
            result["errors"][mode] = f"{type(exc).__name__}: {exc}"[-2000:]
        result["runs"][mode] = runs
    Path(job["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
