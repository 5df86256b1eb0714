"""Wall-clock samples, their medians, and the one record every benchmark section produces.

A `Measurement` is a tool on a case in one mode (cold, warm, hit) with its samples, or a clear
"not available" / "failed" status and the reason, so a missing piece becomes a row, never a crash.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAILED",
    "NOT_AVAILABLE",
    "OK",
    "Measurement",
    "Sample",
    "Unavailable",
    "load_note",
    "repeat",
    "timed",
]

OK = "ok"
NOT_AVAILABLE = "not available"
FAILED = "failed"


class Unavailable(Exception):
    """A piece the benchmark needs (a lockd module, a command, a server) is not there yet."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run: seconds of wall clock and what the run reported (pins, bytes, …)."""

    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Measurement:
    """Repeated runs of one tool on one case in one mode."""

    section: str  # "resolution", "serving", "bytes", "scaling-pins", "scaling-drift"
    case: str
    index: str
    tool: str
    mode: str
    samples: tuple[Sample, ...] = ()
    status: str = OK
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """The status and the most telling line of the detail (a traceback's last line), for tables."""
        lines = [line.strip() for line in self.detail.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        first = lines[0] if lines else ""
        shown = first if len(lines) <= 1 else f"{first[:60]} … {last}"
        return f"{self.status}: {shown[:200]}"

    @property
    def median(self) -> float | None:
        if self.status != OK or not self.samples:
            return None
        return statistics.median(s.seconds for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "case": self.case,
            "index": self.index,
            "tool": self.tool,
            "mode": self.mode,
            "status": self.status,
            "detail": self.detail,
            "median_s": self.median,
            "samples_s": [round(s.seconds, 4) for s in self.samples],
            "sample_extra": [s.extra for s in self.samples],
            "extra": self.extra,
        }


def repeat(
    times: int,
    run: Callable[[int], Sample],
    *,
    section: str,
    case: str,
    index: str,
    tool: str,
    mode: str,
) -> Measurement:
    """Run ``run(i)`` ``times`` times; the first exception turns the whole row into "failed"."""
    samples: list[Sample] = []
    for i in range(times):
        try:
            samples.append(run(i))
        except Unavailable as exc:
            return Measurement(section, case, index, tool, mode, status=NOT_AVAILABLE, detail=str(exc))
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            return Measurement(section, case, index, tool, mode, tuple(samples), FAILED, detail[-3000:])
    return Measurement(section, case, index, tool, mode, tuple(samples))


def timed(action: Callable[[], dict[str, Any] | None]) -> Sample:
    """Time ``action()``; what it returns becomes the sample's extra data."""
    start = time.perf_counter()
    extra = action()
    return Sample(time.perf_counter() - start, extra or {})


def wait_for_quiet(limit: float, seconds: float, log: Callable[[str], None]) -> str:
    """Waits up to `seconds` for the 1-minute load average to fall to `limit`; a note of how it went.

    lockd uses both cores where uv uses about one, so another job on the machine (a test run just
    ended, another engineer's build) slows lockd more than uv: a run started at load 1.7 failed
    verdicts that passed at 0.1 on the same code. The load average trails by about a minute.
    """
    waited = 0.0
    while os.getloadavg()[0] > limit and waited < seconds:
        if waited == 0:
            log(f"waiting up to {seconds:g} s for the load average to fall to {limit:g} ({load_note()})")
        time.sleep(5.0)
        waited += 5.0
    one = os.getloadavg()[0]
    if one > limit:
        return (
            f"BUSY MACHINE: load {one:.2f} > {limit:g} after waiting {waited:g} s; lockd's ratios read high"
        )
    return f"quiet: load {one:.2f} <= {limit:g}" + (f" after waiting {waited:g} s" if waited else "")


def load_note() -> str:
    """The machine's load average right now: other engineers run tests on the same two cores."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
