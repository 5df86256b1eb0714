"""The benchmark harness runs end to end on one tiny case (benchmarks themselves are not tests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from bench.builds import current_build
from bench.cases import FIXTURE_CASES, load_cases, with_nonce
from bench.drift_fleet import store_drift_locks
from bench.indexes import FixtureIndexProcess, fixture_setup
from bench.issue16_report import issue16_markdown, issue16_verdicts
from bench.peers import answer, uv_compile
from bench.phases import median_phases, run_phases
from bench.serving import parse_wrk, wrk_post_script
from bench.timing import Measurement, Sample, wait_for_quiet
from fixtures.served_index import WatchedIndex
from lockd.collector import THRESHOLDS
from lockd.config import load_settings
from lockd.inputs import parse_requirements
from lockd.render import FORMATS
from lockd.service import Service
from lockd.store import queries, transaction
from tests.support import QuietHandler, loopback_http

ROOT = Path(__file__).resolve().parent.parent

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/lock
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.90ms    3.10ms  41.20ms   80.00%
    Req/Sec     1.02k   100.00     1.20k    70.00%
  Latency Distribution
     50%    7.50ms
     75%    9.00ms
     90%   11.00ms
     99%  812.00us
  20345 requests in 10.00s, 5.20MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   2034.50
Transfer/sec:    532.10KB
"""


def test_parse_wrk_reads_throughput_percentiles_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result["requests_per_s"] == 2034.5
    assert result["p50_ms"] == 7.5 and result["p99_ms"] == 0.812
    assert result["requests"] == 20345 and result["errors"] == 3


def test_wrk_script_survives_a_body_with_lua_brackets() -> None:
    script = wrk_post_script("torch==2.5.1\n# ]====] tricky\n")
    assert "]=====]" in script and script.count("wrk.body") == 1


def test_nonce_changes_the_digest_but_not_the_projects() -> None:
    text = "# comment\ntorch==2.5.1\nuvicorn[standard]\n"
    first, second = with_nonce(text, 1), with_nonce(text, 2)

    def names(body: str) -> list[str]:
        return sorted(r.name for r in parse_requirements(body))

    assert names(first) == names(second) == names(text)
    assert first != second and "!=0.0.0.1" in first and "torch" in first


def test_harness_runs_one_tiny_case_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--cases", "fx-tiny", "--repeat", "1", "--latency-ms", "0",
         "--sections", "resolution,bytes", "--tools", "lockd-inproc,uv", "--out", str(out),
         "--quiet-wait", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {(m["tool"], m["mode"]): m for m in report["measurements"] if m["section"] == "resolution"}
    assert set(rows) == {("uv", "cold"), ("uv", "warm"), ("lockd-inproc", "cold"), ("lockd-inproc", "warm")}
    for row in rows.values():
        # requests → requests, urllib3, idna, certifi, charset-normalizer
        assert row["status"] == "ok", row["detail"]
        assert row["median_s"] > 0 and row["sample_extra"][0]["pins"] == 5
    fetched = [m for m in report["measurements"] if m["section"] == "bytes"]
    assert fetched and fetched[0]["sample_extra"][0]["bytes_fetched"] > 0
    assert "| fx-tiny | lockd-inproc |" in done.stdout and "### Targets" in done.stdout


def test_uv_is_timed_without_interpreter_discovery_or_an_earlier_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shims first on PATH, as pyenv puts them: uv looking for an interpreter ran one in every
    # timed run (~100 ms). And an output file from the last run is read as preferences.
    shims = tmp_path / "shims"
    shims.mkdir()
    ran = tmp_path / "shim-ran"
    for name in ("python", "python3", "python3.11"):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho {name} >> {ran}\nexec {sys.executable} "$@"\n')
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    case = next(c for c in load_cases(ROOT / "bench" / "cases", "fixture") if c.name == "fx-tiny")
    run = tmp_path / "run"
    run.mkdir()
    (run / "uv.txt").write_text("requests==2.34.1\n")  # an older version the index has
    with FixtureIndexProcess.start(0) as index:
        uv_compile(case, fixture_setup(index), run, tmp_path / "uv-cache")
    assert not ran.exists(), ran.read_text()
    assert "requests==2.34.2" in (run / "uv.txt").read_text()


def test_the_bench_waits_for_a_quiet_machine_and_says_when_it_was_not() -> None:
    said: list[str] = []
    assert wait_for_quiet(1e6, 60, said.append).startswith("quiet: load ")
    assert said == []  # nothing to wait for
    busy = wait_for_quiet(-1.0, 0, said.append)
    assert busy.startswith("BUSY MACHINE: load ") and "after waiting 0 s" in busy


def _row(section: str, case: str, tool: str, mode: str, seconds: float, **extra: object) -> Measurement:
    return Measurement(section, case, "pypi", tool, mode, (Sample(seconds, dict(extra)),), extra=dict(extra))


def test_issue16_verdicts_judge_each_target_with_its_figures() -> None:
    rows = []
    for case, uv, lockd, pins in (("pypi-25", 1.0, 0.9, 25), ("pypi-300", 2.0, 3.0, 301)):
        rows += [
            _row("footing", case, "uv", "cold", uv, pins=pins),
            _row("footing", case, "uv", "warm", uv / 2),
            _row("footing", case, "uv", "cached", 0.05),
            _row("footing", case, "lockd-http", "cold", lockd, pins=pins, worker_peak_rss_kib=250 * 1024),
            _row("footing", case, "lockd-http", "warm", lockd / 8),
            _row("footing", case, "lockd-http", "cached", 0.1),
            _row("footing", case, "lockd-cli", "cold", lockd),
        ]
    rows.append(Measurement("footing", "pypi-25", "pypi", "lockd-cli", "warm", status="not available", detail="no --cache-dir"))  # fmt: skip
    rows.append(_row("startup", "requests", "lockd-cli", "start-up", 0.12))
    rows.append(_row("drift", "10000 locks", "lockd drift run", "warm", 150.0, locks=10_000, store_s=1))
    for conns, rps, p99 in ((4, 1800.0, 5.0), (16, 2500.0, 15.0)):
        for endpoint in ("POST /lock (stored input)", "GET /v1/blobs/{digest}/requirements.txt"):
            rows.append(_row("issue16-serving", "postgresql, 2 workers", f"{endpoint}, {conns} conn.", "hit", 0.01,
                             connections=conns, requests_per_s=rps, p99_ms=p99, errors=0))  # fmt: skip
    lines = {v.target.split(" ≤")[0].split(" <")[0].split(" ≥")[0]: v for v in issue16_verdicts(rows, [""])}
    assert lines["HTTP cold"].met is False and "pypi-300 1.50×" in lines["HTTP cold"].figures
    assert lines["HTTP warm (pages refetched, metadata cached)"].met is True
    assert lines["HTTP fully cached"].met is True  # 2× uv --offline
    ratio = next(v for k, v in lines.items() if k.startswith("ratio to uv at 300 pins"))
    assert ratio.met is False and "cold 1.50× at 300 vs 0.90× at 25" in ratio.figures
    # How each tool's cost grows, beside the totals: 2.1 s and 1 s more for 275 more pins.
    assert "(a further pin: lockd 7.64 ms, uv 3.64 ms)" in ratio.figures
    assert lines["CLI warm"].met is None and lines["CLI start-up to first request"].met is True
    assert lines["PostgreSQL cache hits, 2 workers"].met is True
    assert lines["drift run over 10,000 stored locks (warm)"].met is True
    assert lines["peak RSS of the server worker during the largest resolution"].met is True
    report = issue16_markdown(rows, [""])
    assert "VERDICT FAIL [lockd] HTTP cold ≤ 1.0× uv cold at every size: pypi-25 0.90×" in report
    assert "| pypi-300 | 301 | lockd | 2.00 s | 3.00 s | 1.50× |" in report


def test_issue16_does_not_judge_a_case_where_lockd_and_uv_found_different_answers() -> None:
    # pypi-100 on real PyPI, December 2026: uv took python-dateutil 4.0 and walked botocore back to
    # 0.76 (99 pins, 47 s cold); lockd, as pip, kept python-dateutil 2.9 and boto3 1.44 (97 pins).
    text = "alembic==1.20.1 \\\n    --hash=sha256:00\nPyYAML==6.0.4\n"
    assert answer(text) == answer("pyyaml==6.0.4\nalembic==1.20.1\n")  # normalised, order-free
    rows = []
    for case, uv_pins, uv in (("pypi-25", "a==1\nb==1\n", 1.0), ("pypi-100", "a==1\nb==0.1\nc==1\n", 40.0)):
        rows += [
            _row("footing", case, "uv", "cold", uv, **answer(uv_pins)),
            _row("footing", case, "lockd-http", "cold", 1.2, **answer("a==1\nb==1\n")),
        ]
    verdict = issue16_verdicts(rows, [""])[0]
    assert verdict.target.startswith("HTTP cold") and verdict.met is False  # pypi-25 alone is judged
    assert "pypi-100 n/a (different answers: 2 pins here, 3 from uv; 0.03× not judged)" in verdict.figures
    assert "| pypi-100 | 3 (different answers: 2 pins here, 3 from uv) |" in issue16_markdown(rows, [""])


def test_phase_worker_accounts_a_cold_and_a_cached_lock_by_phase(tmp_path: Path) -> None:
    case = load_cases(FIXTURE_CASES, "fixture", ["fx-tiny"])[0]
    with FixtureIndexProcess.start(0) as index:
        rows = run_phases(
            case, fixture_setup(index), current_build(), tmp_path / "w", times=1, modes=("cold", "cached")
        )
    assert [r.mode for r in rows] == ["cold", "cached"]
    for row in rows:
        assert row.status == "ok", row.detail
        assert row.extra["missing_hooks"] == []  # every phase lockd has today is hooked
        # The footing of `lockd serve` and `lockd lock`: the collector tuned before the first resolution.
        assert row.extra["collector"] == {"tuned": True, "threshold": list(THRESHOLDS)}
        run = row.samples[0].extra
        assert run["pins"] == 5
        # On the resolving thread phases exclude one another, so they add up to the wall clock.
        assert sum(run["phases"].values()) == pytest.approx(run["wall_s"], rel=0.05)
    assert median_phases(rows[0])["page fetch"] > 0 and median_phases(rows[1])["page fetch"] < median_phases(rows[0])["page fetch"]  # fmt: skip


def _open_service(database: Path, base: str) -> Service:
    settings = load_settings(
        database_url=f"sqlite:///{database}", index_url=f"{base}/simple/", pytorch_index_url=f"{base}/whl"
    )
    service = Service.open(settings)
    service.migrate()
    return service


def test_drift_store_stores_the_locks_post_lock_would(tmp_path: Path) -> None:
    cases = load_cases(FIXTURE_CASES, "fixture", ["fx-api", "fx-tiny"])
    with FixtureIndexProcess.start(0) as index:
        stored = tmp_path / "stored.db"
        store_drift_locks(cases, fixture_setup(index), current_build(), database_url=f"sqlite:///{stored}",
                          count=9, workdir=tmp_path)  # fmt: skip
        fast, real = _open_service(stored, index.base), _open_service(tmp_path / "real.db", index.base)
        try:
            with transaction(fast.engine, write=False) as conn:
                assert len(queries.list_locks(conn, limit=100, after=None)) == 9
            for n in (2, 3, 8):  # derived (not the first nonce input of its case, which is resolved)
                case = cases[n % len(cases)]
                target = {"platform": case.platform, "python": case.python, "cuda": case.cuda}
                text = with_nonce(case.requirements, n)
                found = fast.lock(fast.build_request(requirements=text, target=target))
                resolved = real.lock(real.build_request(requirements=text, target=target))
                assert not found.created and resolved.created
                assert found.lock_digest == resolved.lock_digest
                for fmt in FORMATS:
                    assert fast.lock_file(found.lock_digest, fmt) == real.lock_file(resolved.lock_digest, fmt)
        finally:
            fast.close()
            real.close()


def test_timeline_shows_a_cold_lock_as_it_goes(fixture_index: WatchedIndex) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.timeline", str(FIXTURE_CASES / "fx-tiny"), "--every", "2",
         "--index-url", fixture_index.pypi_url],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [line.split("ms", 1)[1].strip() for line in done.stderr.splitlines() if " ms  " in line]
    # The roots' pages are asked for on threads of their own, before or after the resolution starts.
    assert {"request #1", "request #2"} <= set(events)
    assert events.index("resolution: start") < events.index("resolution: end")
    assert events[-1].startswith("done: exit 0, 5 pins, ")


def test_timeline_of_a_lock_that_fails_says_so_and_exits_with_its_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.timeline", str(tmp_path / "no-such-case")],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot read" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].split("ms", 1)[1].strip().startswith("done: exit 1, ")


def _cpu_table(stdout: str) -> dict[str, tuple[float, int]]:
    rows = {}
    for line in stdout.splitlines():
        found = re.match(r"^(\S.*?)\s+(\d+\.\d+)s\s+\d+%\s+(\d+)$", line)
        if found:
            rows[found.group(1)] = (float(found.group(2)), int(found.group(3)))
    return rows


def test_cli_cpu_splits_a_cold_and_a_warm_lock_by_part(fixture_index: WatchedIndex) -> None:
    from bench.cli_cpu import PARTS  # noqa: PLC0415

    runs = {}
    for mode in ("cold", "warm"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.cli_cpu", str(FIXTURE_CASES / "fx-tiny"), "--index-url",
             fixture_index.pypi_url, *(["--warm"] if mode == "warm" else [])],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"`lockd lock` fx-tiny, {mode}, round 1: wall " in done.stdout
        rows = _cpu_table(done.stdout)
        assert set(rows) == {part for part, _, _ in PARTS}, done.stdout  # every part, none unnamed
        process = float(re.search(r"this process (\d+\.\d+) s of CPU", done.stdout).group(1))  # type: ignore[union-attr]
        assert 0 < sum(seconds for seconds, _ in rows.values()) <= process + 0.01
        runs[mode] = rows
    cold, warm = runs["cold"], runs["warm"]
    assert cold["resolver"][1] == warm["resolver"][1] == 1
    assert cold["page requests (connect, send, headers)"][1] >= 5  # a page per pin, at least
    assert cold["cache: writes"][1] >= 1
    # Warm: the pages are within their TTL and the metadata is in the cache: nothing is asked.
    assert warm["page requests (connect, send, headers)"][1] == 0
    assert warm["cache: reads"][1] >= 5 and warm["pages: built from forms"][1] >= 1


def test_cli_cpu_starts_each_cold_round_from_a_copy_of_a_given_cache(
    fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    filled = tmp_path / "used"
    lock = [sys.executable, "-m", "lockd", "lock", str(FIXTURE_CASES / "fx-tiny" / "requirements.in"),
            "--platform", "linux_x86_64", "--python", "3.11", "--index-url", fixture_index.pypi_url,
            "--cache-dir", str(filled), "-o", str(tmp_path / "l.txt")]  # fmt: skip
    assert subprocess.run(lock, capture_output=True, check=False, cwd=ROOT, timeout=120).returncode == 0
    before = {p.name: p.stat().st_size for p in filled.iterdir()}
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli_cpu", str(FIXTURE_CASES / "fx-tiny"), "--index-url",
         fixture_index.pypi_url, "--cache-from", str(filled), "--rounds", "2"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("`lockd lock` fx-tiny, cold, round") == 2
    # Both rounds found the copied cache's pages fresh: nothing was asked of the index.
    assert done.stdout.count("page requests (connect, send, headers)         0.000s     0%      0\n") == 2
    assert {p.name: p.stat().st_size for p in filled.iterdir()} == before  # a copy, never the cache given


class _Ranges(QuietHandler):
    """A 1 MiB file that answers HEAD and single byte ranges, and counts the ranges it served."""

    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * 4096
    served: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def do_GET(self) -> None:
        start, end = (int(n) for n in self.headers["Range"].removeprefix("bytes=").split("-"))
        type(self).served.append(self.headers["Range"])
        part = self.body[start : end + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(self.body)}")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)


def test_range_requests_times_each_request_of_a_given_file() -> None:
    with loopback_http(_Ranges) as host:
        done = subprocess.run(
            [sys.executable, "-m", "bench.range_requests", f"http://{host}/x.whl", "--requests", "20"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    assert re.search(r"CPU \d+\.\d{3} ms a request \(this thread\), wall \d+\.\d\d ms", done.stdout), (
        done.stdout
    )
    assert len(_Ranges.served) == 21  # one to open the connection, then the timed ones
    assert _Ranges.served[1] == f"bytes={len(_Ranges.body) - 65536}-{len(_Ranges.body) - 1}"
