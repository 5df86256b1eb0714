"""The benchmark harness runs end to end on one tiny case (benchmarks themselves are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.cases import with_nonce
from bench.serving import parse_wrk, wrk_post_script
from lockd.inputs import parse_requirements

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
         "--sections", "resolution,bytes", "--tools", "lockd-inproc,uv", "--out", str(out)],
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
