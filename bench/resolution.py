"""Resolution time, side by side: lockd (CLI, HTTP, in-process), uv and pip-compile on one case.

Every tool resolves the same case against the same `IndexSetup`, cold (empty caches) and warm
(caches filled by an earlier run, resolution still done afresh). lockd answers a digest it has seen
from its store without resolving, so every timed lockd CLI/HTTP resolution sends an input with a
fresh digest (`with_nonce`); the cache hit (same input again) is measured on its own as mode "hit".
The in-process run also reports bytes fetched (lockd's `FetchStats`) and the pinned files' size.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cases import Case, IndexSetup, with_nonce
from bench.indexes import FixtureIndexProcess
from bench.lockd_process import (
    LockdServer,
    lockd_available,
    lockd_cli_lock,
    lockd_env,
    lockd_migrate,
)
from bench.peers import count_pins, pip_compile, uv_compile
from bench.timing import Measurement, Sample, repeat, timed
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.routing import plan_for
from lockd.target import Target

if TYPE_CHECKING:  # imported when used at run time (see resolve_in_process)
    from lockd.index import IndexClient

__all__ = ["TOOLS", "build_request", "new_client", "resolve_in_process", "run_case"]

TOOLS = ("lockd-http", "lockd-cli", "lockd-inproc", "uv", "pip-compile")
HIT_REQUESTS = 20


def build_request(case: Case, index: IndexSetup, requirements: str | None = None) -> LockRequest:
    """The `LockRequest` lockd's own intake would build for this case."""
    target = Target.of(case.platform, case.python, case.cuda)
    plan = plan_for(target, default_url=index.pypi_url, pytorch_base=index.pytorch_base)
    reqs = parse_requirements(requirements if requirements is not None else case.requirements)
    return LockRequest(requirements=reqs, constraints=(), target=target, plan=plan, options=LockOptions())


def resolve_in_process(request: LockRequest, client: IndexClient) -> dict[str, Any]:
    """``resolve(request, client)``; the pins, and what the client fetched doing it."""
    # lockd's pieces land one by one: imported when used, so a missing one is a row, not a crash.
    from lockd.resolver import resolve  # noqa: PLC0415

    before = client.stats
    lock = resolve(request, client)
    after = client.stats
    pinned_bytes = sum(f.size or 0 for p in lock.packages for f in p.files)
    return {
        "pins": len(lock.packages),
        "bytes_fetched": after.bytes_fetched - before.bytes_fetched,
        "requests": after.requests - before.requests,
        "range_requests": after.range_requests - before.range_requests,
        "whole_downloads": after.whole_downloads - before.whole_downloads,
        "pinned_files_bytes": pinned_bytes,
        "pinned_files": sum(len(p.files) for p in lock.packages),
    }


def new_client() -> IndexClient:
    from lockd.index import IndexClient  # noqa: PLC0415  (see resolve_in_process)

    return IndexClient()


class _Runner:
    """One tool on one case: `cold(i)`, `prime()`, `warm(i)`, optional `hit(i)`, then `close()`."""

    def __init__(self, case: Case, index: IndexSetup, workdir: Path) -> None:
        self.case = case
        self.index = index
        self.workdir = workdir

    def cold(self, i: int) -> Sample:
        raise NotImplementedError

    def prime(self) -> None:
        raise NotImplementedError

    def warm(self, i: int) -> Sample:
        raise NotImplementedError

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class _UvRunner(_Runner):
    def cold(self, i: int) -> Sample:
        cache = self.workdir / f"cold-cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        sample = timed(lambda: uv_compile(self.case, self.index, self.workdir / "cold", cache))
        shutil.rmtree(cache, ignore_errors=True)
        return sample

    def prime(self) -> None:
        uv_compile(self.case, self.index, self.workdir / "warm", self.workdir / "warm-cache")

    def warm(self, i: int) -> Sample:
        return timed(
            lambda: uv_compile(self.case, self.index, self.workdir / "warm", self.workdir / "warm-cache")
        )


class _PipRunner(_Runner):
    def cold(self, i: int) -> Sample:
        cache = self.workdir / f"cold-cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        sample = timed(lambda: pip_compile(self.case, self.index, self.workdir / "cold", cache))
        shutil.rmtree(cache, ignore_errors=True)
        return sample

    def prime(self) -> None:
        pip_compile(self.case, self.index, self.workdir / "warm", self.workdir / "warm-cache")

    def warm(self, i: int) -> Sample:
        return timed(
            lambda: pip_compile(self.case, self.index, self.workdir / "warm", self.workdir / "warm-cache")
        )


class _InProcessRunner(_Runner):
    """``resolve()`` directly: cold is a new `IndexClient`, warm one whose caches a run filled."""

    client: IndexClient | None = None
    fixture: FixtureIndexProcess | None = None

    def cold(self, i: int) -> Sample:
        lockd_available("resolver", "index")
        request = build_request(self.case, self.index)
        client = new_client()
        if self.fixture is not None:
            self.fixture.reset_counters()
        try:
            sample = timed(lambda: resolve_in_process(request, client))
        finally:
            client.close()
        if self.fixture is not None:
            # What the fixture index served (the PyTorch side, or everything on fixture cases).
            counters = self.fixture.counters()
            sample.extra["fixture_bytes_served"] = sum(counters.get("bytes", {}).values())
            sample.extra["fixture_requests"] = counters.get("requests", {})
        return sample

    def prime(self) -> None:
        lockd_available("resolver", "index")
        self.client = new_client()
        resolve_in_process(build_request(self.case, self.index), self.client)

    def warm(self, i: int) -> Sample:
        request = build_request(self.case, self.index)
        client = self.client
        assert client is not None  # prime() made it
        return timed(lambda: resolve_in_process(request, client))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        super().close()


class _CliRunner(_Runner):
    """``python -m lockd lock``: cold is a fresh database, warm one a previous lock filled."""

    nonce = 0

    def _env(self, name: str) -> dict[str, str]:
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        return lockd_env(f"sqlite:///{directory}/lockd.db", self.index)

    def cold(self, i: int) -> Sample:
        lockd_available("cli", "service")
        shutil.rmtree(self.workdir / f"cold-{i}", ignore_errors=True)
        env = self._env(f"cold-{i}")
        lockd_migrate(env)
        return timed(
            lambda: lockd_cli_lock(
                self.case, self.case.requirements, self.index, env, self.workdir / f"cold-{i}"
            )
        )

    def prime(self) -> None:
        lockd_available("cli", "service")
        env = self._env("warm")
        lockd_migrate(env)
        lockd_cli_lock(self.case, self.case.requirements, self.index, env, self.workdir / "warm")

    def warm(self, i: int) -> Sample:
        env = self._env("warm")
        self.nonce += 1
        text = with_nonce(self.case.requirements, self.nonce)
        return timed(lambda: lockd_cli_lock(self.case, text, self.index, env, self.workdir / "warm"))


class _HttpRunner(_Runner):
    """``POST /lock`` on a live server: cold is a fresh server and database per run."""

    server: LockdServer | None = None
    nonce = 0

    def cold(self, i: int) -> Sample:
        directory = self.workdir / f"cold-{i}"
        shutil.rmtree(directory, ignore_errors=True)
        with LockdServer.start(f"sqlite:///{directory}/lockd.db", self.index, directory) as server:
            result = server.post_lock(self.case, self.case.requirements)
        return Sample(result.seconds, {"pins": _pins_of(result.body)})

    def prime(self) -> None:
        directory = self.workdir / "warm"
        self.server = LockdServer.start(f"sqlite:///{directory}/lockd.db", self.index, directory)
        self.server.post_lock(self.case, self.case.requirements)

    def warm(self, i: int) -> Sample:
        assert self.server is not None
        self.nonce += 1
        result = self.server.post_lock(self.case, with_nonce(self.case.requirements, self.nonce))
        return Sample(result.seconds, {"pins": _pins_of(result.body)})

    def hit(self, i: int) -> Sample:
        assert self.server is not None
        result = self.server.post_lock(self.case, self.case.requirements)
        return Sample(result.seconds, {"pins": _pins_of(result.body)})

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        super().close()


def _pins_of(body: bytes) -> int:
    return count_pins(body.decode("utf-8", "replace"))


_RUNNERS: dict[str, Callable[[Case, IndexSetup, Path], _Runner]] = {
    "uv": _UvRunner,
    "pip-compile": _PipRunner,
    "lockd-inproc": _InProcessRunner,
    "lockd-cli": _CliRunner,
    "lockd-http": _HttpRunner,
}


def run_case(
    case: Case,
    index: IndexSetup,
    workroot: Path,
    *,
    times: int,
    tools: tuple[str, ...] = TOOLS,
    fixture: FixtureIndexProcess | None = None,
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    """Every tool on one case: a cold row, a warm row, and for lockd-http a cache-hit row."""
    rows: list[Measurement] = []
    for tool in tools:
        runner = _RUNNERS[tool](case, index, workroot / f"{case.name}-{tool}")
        if isinstance(runner, _InProcessRunner):
            runner.fixture = fixture
        common: dict[str, Any] = {
            "section": "resolution",
            "case": case.name,
            "index": index.label,
            "tool": tool,
        }
        try:
            log(f"  {case.name}: {tool} cold ×{times}")
            cold = repeat(times, runner.cold, mode="cold", **common)
            rows.append(cold)
            if cold.status != "ok":
                # A tool that cannot resolve cold cannot be primed either: one row says why.
                rows.append(Measurement(mode="warm", status=cold.status, detail=cold.detail, **common))
                continue
            log(f"  {case.name}: {tool} warm ×{times}")
            warm = repeat(times, _primed(runner), mode="warm", **common)
            rows.append(warm)
            if isinstance(runner, _HttpRunner) and warm.status == "ok":
                log(f"  {case.name}: {tool} cache hit ×{HIT_REQUESTS}")
                rows.append(repeat(HIT_REQUESTS, runner.hit, mode="hit", **common))
        finally:
            runner.close()
    return rows


def _primed(runner: _Runner) -> Callable[[int], Sample]:
    """``runner.warm``, priming the caches before the first call (priming is never timed)."""
    state = {"primed": False}

    def run(i: int) -> Sample:
        if not state["primed"]:
            runner.prime()
            state["primed"] = True
        return runner.warm(i)

    return run
