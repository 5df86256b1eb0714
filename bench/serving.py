"""Serving cost of cache hits: throughput and p50/p99 latency under wrk, and the server's peak RSS.

Two requests a platform's CI makes over and over: ``POST /lock`` of an input lockd has already
locked (a digest lookup, no resolution) and ``GET /v1/blobs/<lock digest>/requirements.txt`` (an
immutable blob). Each runs against SQLite and PostgreSQL, with 1 and 2 uvicorn workers. wrk runs on
the same two cores as the server, so the numbers are a floor of what a separate client would see.
wrk is closed-loop (each connection waits for its answer), so each endpoint runs at a few
concurrencies (4 and 16 connections): the target holds for a configuration if one of them serves
≥ 1000 requests/s with p99 < 20 ms.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bench.cases import Case, IndexSetup
from bench.lockd_process import LockdServer, postgres_database
from bench.timing import FAILED, NOT_AVAILABLE, Measurement, Sample, Unavailable, load_note

__all__ = ["WrkResult", "parse_wrk", "run_serving", "wrk_post_script"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


class WrkResult(dict[str, Any]):
    """requests_per_s, p50_ms, p75_ms, p90_ms, p99_ms, requests, errors (non-2xx + socket errors)."""


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """The numbers of ``wrk --latency`` output."""
    result = WrkResult()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk output: {output[-500:]}")
    result["requests_per_s"] = float(rps.group(1))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE):
        result[f"p{pct}_ms"] = round(_seconds(value) * 1000, 3)
    total = re.search(r"(\d+) requests in", output)
    result["requests"] = int(total.group(1)) if total else 0
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    result["errors"] = errors
    return result


def wrk_post_script(body: str, *, token: str | None = None) -> str:
    """A wrk Lua script that POSTs ``body`` as text/plain (with a bearer token if given)."""
    # A Lua long bracket needs a level no `]=...=]` in the body closes early.
    level = "=" * 4
    while f"]{level}]" in body:
        level += "="
    auth = "" if token is None else f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "text/plain"\n'
        f"{auth}wrk.body = [{level}[\n{body}]{level}]\n"
    )


def _wrk(url: str, script: Path | None, *, duration: float, connections: int, threads: int) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise Unavailable("wrk is not installed (apt-get install -y wrk)")
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "5s"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr[-500:]}")
    return parse_wrk(done.stdout)


def _databases(workdir: Path) -> list[tuple[str, Callable[[], AbstractContextManager[str]]]]:
    @contextmanager
    def sqlite() -> Iterator[str]:
        directory = workdir / "sqlite"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        yield f"sqlite:///{directory}/lockd.db"

    return [("sqlite", sqlite), ("postgresql", postgres_database)]


def run_serving(
    case: Case,
    index: IndexSetup,
    workdir: Path,
    *,
    duration: float = 10.0,
    connections: tuple[int, ...] = (4, 16),
    threads: int = 2,
    workers_list: tuple[int, ...] = (1, 2),
    databases: tuple[str, ...] = ("sqlite", "postgresql"),
    root: Path | None = None,
    suffix: str = "",
    log: Callable[[str], None] = print,
) -> list[Measurement]:
    """wrk against both cache-hit endpoints, per database and worker count.

    ``root``: the lockd tree to serve (default this one); ``suffix`` marks its rows ("@base")."""
    rows: list[Measurement] = []
    for db_name, database in _databases(workdir):
        if db_name not in databases:
            continue
        for workers in workers_list:
            label = f"{db_name}, {workers} worker{'s' if workers > 1 else ''}{suffix}"
            log(f"  serving: {label}")
            rows.extend(
                _one_server(
                    case,
                    index,
                    workdir,
                    database=database,
                    label=label,
                    workers=workers,
                    duration=duration,
                    connections=connections,
                    threads=threads,
                    root=root,
                )
            )
    return rows


def _one_server(
    case: Case,
    index: IndexSetup,
    workdir: Path,
    *,
    database: Callable[[], AbstractContextManager[str]],
    label: str,
    workers: int,
    duration: float,
    connections: tuple[int, ...],
    threads: int,
    root: Path | None = None,
) -> list[Measurement]:
    common: dict[str, Any] = {"section": "serving", "case": label, "index": index.label}
    endpoints = ("POST /lock (stored input)", "GET /v1/blobs/{digest}/requirements.txt")
    try:
        with (
            database() as url,
            LockdServer.start(url, index, workdir / "server", workers=workers, root=root) as server,
        ):
            stored = server.post_lock(case, case.requirements)
            if stored.lock_digest is None:
                raise RuntimeError("POST /lock answered without a Lock-Digest header")
            script = workdir / "post.lua"
            script.write_text(wrk_post_script(case.requirements, token=server.token))
            query = {"python": case.python, "platform": case.platform}
            if case.cuda is not None:
                query["cuda"] = case.cuda
            targets = (
                (endpoints[0], f"{server.base}/lock?{urllib.parse.urlencode(query)}", script),
                (endpoints[1], f"{server.base}/v1/blobs/{stored.lock_digest}/requirements.txt", None),
            )
            rows = []
            for name, target_url, lua in targets:
                # A short unmeasured run first: connection pools, first-request imports, page cache.
                _wrk(target_url, lua, duration=2, connections=max(connections), threads=threads)
                for conns in connections:
                    load = load_note()
                    result = _wrk(
                        target_url, lua, duration=duration, connections=conns, threads=min(threads, conns)
                    )
                    peaks = server.sample_rss()
                    extra = dict(result)
                    extra.update(
                        {
                            "workers": workers,
                            "connections": conns,
                            "wrk_threads": min(threads, conns),
                            "duration_s": duration,
                            "load": load,
                            "peak_rss_kib": peaks,
                            "peak_rss_total_mib": round(sum(peaks.values()) / 1024, 1),
                        }
                    )
                    sample = Sample((result.get("p50_ms") or 0) / 1000, extra)
                    tool = f"{name}, {conns} conn."
                    rows.append(Measurement(tool=tool, mode="hit", samples=(sample,), extra=extra, **common))
            return rows
    except Unavailable as exc:
        return [
            Measurement(tool=e, mode="hit", status=NOT_AVAILABLE, detail=str(exc), **common)
            for e in endpoints
        ]
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"[-3000:]
        return [Measurement(tool=e, mode="hit", status=FAILED, detail=detail, **common) for e in endpoints]
