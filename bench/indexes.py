"""The indexes a benchmark run resolves against: the fixture index (a subprocess) and real PyPI.

The fixture index runs as its own process (``python -m fixtures.index --port 0 --latency-ms N``) so
its request handling does not share a GIL with an in-process lockd; its counters (requests and bytes
per kind) come from ``GET /_control/counters``. Real PyPI has no PyTorch index reachable from here,
so its torch family is served by the fixture index, and every result says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cases import IndexSetup
from bench.timing import Unavailable
from lockd.routing import DEFAULT_INDEX_URL, DEFAULT_PYTORCH_BASE

__all__ = ["PYPI_URL", "FixtureIndexProcess", "fixture_setup", "pypi_setup"]

PYPI_URL = DEFAULT_INDEX_URL
ROOT = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class FixtureIndexProcess:
    """A running ``fixtures.index`` subprocess; stop it with `stop` (or use it as a context manager)."""

    base: str
    process: subprocess.Popen[str]
    latency_ms: float

    @classmethod
    def start(cls, latency_ms: float, *, timeout: float = 120.0) -> FixtureIndexProcess:
        if not (ROOT / "fixtures" / "index.py").is_file():
            raise Unavailable("fixtures/index.py is not there")
        process = subprocess.Popen(
            [sys.executable, "-m", "fixtures.index", "--port", "0", "--latency-ms", str(latency_ms)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line:
            line = process.stdout.readline().strip()
            if process.poll() is not None:
                break
        if not line.startswith("http"):
            process.kill()
            err = process.stderr.read() if process.stderr else ""
            raise Unavailable(f"fixture index did not start: {line!r} {err[-500:]}")
        return cls(line, process, latency_ms)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> FixtureIndexProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counters(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/_control/counters", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def reset_counters(self) -> None:
        request = urllib.request.Request(f"{self.base}/_control/reset-counters", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def set_latency(self, ms: float) -> None:
        body = json.dumps({"ms": ms}).encode()
        request = urllib.request.Request(f"{self.base}/_control/latency", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10):
            pass
        self.latency_ms = ms


def fixture_setup(index: FixtureIndexProcess) -> IndexSetup:
    return IndexSetup(
        label=f"fixture+{index.latency_ms:g}ms",
        pypi_url=f"{index.base}/simple/",
        pytorch_base=f"{index.base}/whl",
        pypi_is_fixture=True,
    )


def pypi_setup(index: FixtureIndexProcess | None) -> IndexSetup:
    """Real PyPI; the PyTorch index is the fixture index's (download.pytorch.org is unreachable)."""
    torch_base = f"{index.base}/whl" if index is not None else DEFAULT_PYTORCH_BASE
    return IndexSetup(
        label="pypi (torch family: fixture index)",
        pypi_url=PYPI_URL,
        pytorch_base=torch_base,
        pypi_is_fixture=False,
    )
