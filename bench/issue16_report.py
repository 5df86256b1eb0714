"""The issue-16 report: same-footing tables, where the time goes, and one verdict line per target.

Targets (issue 16; each lockd figure is a median against uv's median in the same run):
HTTP cold ≤ 1.0× uv cold on every case; warm ≤ 0.7× uv warm; fully cached ≤ 3× uv ``--offline``;
the ratio at the largest generated stack no worse than at the smallest (per mode); CLI cold ≤ 1.2×
uv cold, CLI warm ≤ 1.0× uv warm, CLI start-up to the first request ≤ 150 ms; cache hits on
PostgreSQL with 2 workers ≥ 2,000 req/s with p99 < 20 ms; a warm drift run over 10,000 stored locks
< 3 minutes; peak RSS of the server worker during the largest resolution < 300 MB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bench.phases import PHASES, median_phases
from bench.timing import OK, Measurement

__all__ = ["Verdict16", "issue16_markdown", "issue16_verdicts"]

RSS_LIMIT_MIB = 300.0
STARTUP_LIMIT_S = 0.150
DRIFT_LIMIT_S = 180.0
DRIFT_LOCKS = 10_000
SERVING_RPS, SERVING_P99_MS = 2000.0, 20.0
_SIZED = re.compile(r"^pypi-(\d+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict16:
    target: str
    build: str  # "lockd" or "lockd@base"
    met: bool | None  # None: not measured
    figures: str

    @property
    def line(self) -> str:
        word = "N/A" if self.met is None else ("PASS" if self.met else "FAIL")
        return f"VERDICT {word} [{self.build}] {self.target}: {self.figures}"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "build": self.build, "met": self.met, "figures": self.figures}


def _s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


class _Index:
    def __init__(self, rows: list[Measurement]) -> None:
        self.rows = {(r.section, r.case, r.tool, r.mode): r for r in rows}
        self.cases = list(dict.fromkeys(r.case for r in rows if r.section == "footing"))

    def get(self, section: str, case: str, tool: str, mode: str) -> Measurement | None:
        return self.rows.get((section, case, tool, mode))

    def med(self, case: str, tool: str, mode: str) -> float | None:
        row = self.get("footing", case, tool, mode)
        return None if row is None else row.median

    def ratio(self, case: str, tool: str, mode: str, uv_mode: str | None = None) -> float | None:
        return _ratio(self.med(case, tool, mode), self.med(case, "uv", uv_mode or mode))

    def pins(self, case: str) -> int | None:
        for tool in ("uv", "lockd-http"):
            row = self.get("footing", case, tool, "cold")
            for s in row.samples if row else ():
                if isinstance(s.extra.get("pins"), int):
                    return int(s.extra["pins"])
        return None

    def answer(self, case: str, tool: str, mode: str) -> tuple[str, int] | None:
        """The first timed run's answer (pins digest, pin count), if it reported one."""
        row = self.get("footing", case, tool, mode)
        for s in row.samples if row else ():
            if isinstance(s.extra.get("answer"), str):
                return str(s.extra["answer"]), int(s.extra.get("pins", 0))
        return None

    def parted(self, case: str, tool: str, mode: str, uv_mode: str | None = None) -> str | None:
        """Why the case's times do not compare: the two tools found different answers."""
        mine, theirs = self.answer(case, tool, mode), self.answer(case, "uv", uv_mode or mode)
        if mine is None or theirs is None or mine[0] == theirs[0]:
            return None
        return f"different answers: {mine[1]} pins here, {theirs[1]} from uv"

    def why(self, case: str, tool: str, mode: str) -> str:
        row = self.get("footing", case, tool, mode)
        return "not run" if row is None else row.headline


def _sized(cases: list[str]) -> list[tuple[int, str]]:
    return sorted((int(m.group(1)), c) for c in cases if (m := _SIZED.match(c)))


def _largest(ix: _Index, sized: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The largest generated stack, else (fixture runs) the case with the most pins."""
    if sized:
        return sized[-1]
    counted = sorted((ix.pins(c) or 0, c) for c in ix.cases)
    return counted[-1] if counted else None


def _per_pin(ix: _Index, small: str, large: str, *, http: str, mode: str, more_pins: int) -> str:
    """What each pin past the smaller stack's cost each tool, in ms: how their costs grow.

    The ratio compares totals, so a tool with a larger fixed cost (uv's start-up, its cache's
    index) loses less at the small end; the cost of a further pin is the growth itself.
    """
    if more_pins <= 0:
        return ""
    growth = []
    for tool in (http, "uv"):
        a, b = ix.med(large, tool, mode), ix.med(small, tool, mode)
        if a is None or b is None:
            return ""
        growth.append((a - b) / more_pins * 1000)
    return f" (a further pin: lockd {growth[0]:.2f} ms, uv {growth[1]:.2f} ms)"


def _ratio_target(
    ix: _Index, tool: str, *, mode: str, uv_mode: str, limit: float, name: str, build: str
) -> Verdict16:
    parts, met = [], True
    judged = 0
    for case in ix.cases:
        r = ix.ratio(case, tool, mode, uv_mode)
        if r is None:
            parts.append(f"{case} n/a ({ix.why(case, tool, mode)[:80]})")
            continue
        parted = ix.parted(case, tool, mode, uv_mode)
        if parted is not None:  # timing different work would flatter one side
            parts.append(f"{case} n/a ({parted}; {_x(r)} not judged)")
            continue
        judged += 1
        met = met and r <= limit
        parts.append(f"{case} {_x(r)} ({_s(ix.med(case, tool, mode))} vs {_s(ix.med(case, 'uv', uv_mode))})")
    if not judged and ix.cases:
        reasons = {ix.why(case, tool, mode) for case in ix.cases}
        if len(reasons) == 1:  # one reason for every case: said once
            return Verdict16(target=name, build=build, met=None, figures=f"every case: {reasons.pop()[:200]}")
    return Verdict16(
        target=name, build=build, met=met if judged else None, figures="; ".join(parts) or "not measured"
    )


def issue16_verdicts(rows: list[Measurement], suffixes: list[str]) -> list[Verdict16]:
    ix = _Index(rows)
    out: list[Verdict16] = []
    sized = _sized(ix.cases)
    for sfx in suffixes:
        build = f"lockd{sfx}"
        http, cli = f"lockd-http{sfx}", f"lockd-cli{sfx}"
        out.append(
            _ratio_target(
                ix,
                http,
                mode="cold",
                uv_mode="cold",
                limit=1.0,
                name="HTTP cold ≤ 1.0× uv cold at every size",
                build=build,
            )
        )
        out.append(_ratio_target(ix, http, mode="warm", uv_mode="warm", limit=0.7, name="HTTP warm (pages refetched, metadata cached) ≤ 0.7× uv warm", build=build))  # fmt: skip
        out.append(
            _ratio_target(
                ix,
                http,
                mode="cached",
                uv_mode="cached",
                limit=3.0,
                name="HTTP fully cached ≤ 3× uv --offline",
                build=build,
            )
        )
        if len(sized) >= 2:
            (small_n, small), (large_n, large) = sized[0], sized[-1]
            parts, met, judged = [], True, 0
            for mode in ("cold", "warm", "cached"):
                a, b = ix.ratio(large, http, mode), ix.ratio(small, http, mode)
                if ix.parted(large, http, mode) or ix.parted(small, http, mode):
                    parts.append(f"{mode} n/a (different answers)")
                    continue
                if a is None or b is None:
                    parts.append(f"{mode} n/a")
                    continue
                judged += 1
                met = met and a <= b
                parts.append(f"{mode} {_x(a)} at {large_n} vs {_x(b)} at {small_n}{_per_pin(ix, small, large, http=http, mode=mode, more_pins=large_n - small_n)}")  # fmt: skip
            out.append(Verdict16(target=f"ratio to uv at {large_n} pins ≤ ratio at {small_n} (HTTP, each mode)",
                                 build=build, met=met if judged else None, figures="; ".join(parts)))  # fmt: skip
        else:
            out.append(Verdict16(target="ratio at 300 pins ≤ ratio at 25", build=build, met=None,
                                 figures="needs two pypi-N cases (--real-pypi)"))  # fmt: skip
        out.append(
            _ratio_target(
                ix, cli, mode="cold", uv_mode="cold", limit=1.2, name="CLI cold ≤ 1.2× uv cold", build=build
            )
        )
        out.append(
            _ratio_target(
                ix, cli, mode="warm", uv_mode="warm", limit=1.0, name="CLI warm ≤ 1.0× uv warm", build=build
            )
        )
        start = ix.get("startup", "requests", cli, "start-up")
        med = None if start is None else start.median
        out.append(Verdict16(target="CLI start-up to first request ≤ 150 ms", build=build,
                             met=None if med is None else med <= STARTUP_LIMIT_S,
                             figures=_s(med) if med is not None else (start.headline if start else "not measured")))  # fmt: skip
        out.append(_serving(rows, sfx, build))
        out.append(_drift(rows, sfx, build))
        out.append(_rss(ix, _largest(ix, sized), http, build))
    return out


def _serving(rows: list[Measurement], sfx: str, build: str) -> Verdict16:
    name = f"PostgreSQL cache hits, 2 workers ≥ {SERVING_RPS:,.0f} req/s, p99 < {SERVING_P99_MS:g} ms"
    mine = [r for r in rows if r.section == "issue16-serving" and r.case == f"postgresql, 2 workers{sfx}"]
    ok = [r for r in mine if r.status == OK]
    if not ok:
        return Verdict16(
            target=name, build=build, met=None, figures=mine[0].headline if mine else "not measured"
        )
    by_endpoint: dict[str, list[Measurement]] = {}
    for r in ok:
        by_endpoint.setdefault(r.tool.rsplit(",", 1)[0], []).append(r)
    met, parts = True, []
    for endpoint, group in by_endpoint.items():
        good = any(_fast(r.extra) for r in group)
        met = met and good
        shown = ", ".join(f"{r.extra['connections']} conn. {r.extra['requests_per_s']:.0f} req/s p99 {r.extra.get('p99_ms', 0):.1f} ms"
                          for r in group)  # fmt: skip
        parts.append(f"{endpoint}: {shown}")
    return Verdict16(target=name, build=build, met=met, figures="; ".join(parts))


def _fast(e: dict[str, Any]) -> bool:
    return bool(
        e["requests_per_s"] >= SERVING_RPS and e.get("p99_ms", 1e9) < SERVING_P99_MS and not e.get("errors")
    )


def _drift(rows: list[Measurement], sfx: str, build: str) -> Verdict16:
    name = f"drift run over {DRIFT_LOCKS:,} stored locks (warm) < 3 min"
    row = next((r for r in rows if r.section == "drift" and r.tool == f"lockd drift run{sfx}"), None)
    if row is None:
        return Verdict16(target=name, build=build, met=None, figures="not measured")
    locks = row.extra.get("locks")
    if row.status != OK:
        failed = "still running" in row.detail and locks == DRIFT_LOCKS
        return Verdict16(target=name, build=build, met=False if failed else None, figures=row.headline)
    secs = row.median or 0.0
    figures = f"{_s(secs)} over {locks} locks (storing them took {row.extra.get('store_s')} s)"
    if locks != DRIFT_LOCKS:
        return Verdict16(target=name, build=build, met=None, figures=f"not judged: {figures}")
    return Verdict16(target=name, build=build, met=secs < DRIFT_LIMIT_S, figures=figures)


def _rss(ix: _Index, largest: tuple[int, str] | None, http: str, build: str) -> Verdict16:
    name = "peak RSS of the server worker during the largest resolution < 300 MB"
    if largest is None:
        return Verdict16(target=name, build=build, met=None, figures="nothing resolved")
    n, case = largest
    row = ix.get("footing", case, http, "cold")
    peaks = [int(s.extra.get("worker_peak_rss_kib", 0)) for s in (row.samples if row else ())]
    if not peaks or not any(peaks):
        return Verdict16(target=name, build=build, met=None, figures=f"{case}: {ix.why(case, http, 'cold')}")
    mib = max(peaks) / 1024
    return Verdict16(target=name, build=build, met=mib < RSS_LIMIT_MIB,
                     figures=f"{mib:.0f} MiB (VmHWM, {case}, {ix.pins(case) or n} pins, max of {len(peaks)} cold runs)")  # fmt: skip


def _footing_table(ix: _Index, suffixes: list[str]) -> list[str]:
    lines = [
        "| case | pins | lockd | uv cold | lockd HTTP cold | ratio | uv warm | lockd warm | ratio | uv --offline | lockd fully cached | ratio | CLI cold / uv cold | CLI warm / uv warm | worker peak RSS (cold) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in ix.cases:
        for sfx in suffixes:
            http, cli = f"lockd-http{sfx}", f"lockd-cli{sfx}"
            cold = ix.get("footing", case, http, "cold")
            peaks = [int(s.extra.get("worker_peak_rss_kib", 0)) for s in (cold.samples if cold else ())]
            rss = f"{max(peaks) / 1024:.0f} MiB" if peaks and any(peaks) else "—"
            pins = str(ix.pins(case) or "—")
            parted = ix.parted(case, http, "cold")
            cells = [case, pins if parted is None else f"{pins} ({parted})", f"lockd{sfx}"]
            for mode in ("cold", "warm", "cached"):
                mine = ix.med(case, http, mode)
                cells += [_s(ix.med(case, "uv", mode)), _s(mine) if mine is not None else _short(ix.why(case, http, mode)),
                          _x(ix.ratio(case, http, mode))]  # fmt: skip
            cells += [_x(ix.ratio(case, cli, "cold")), _x(ix.ratio(case, cli, "warm")), rss]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _before_after(ix: _Index, suffixes: list[str]) -> list[str]:
    """The baseline against the build under test, per case and mode (only with a baseline)."""
    base = next((x for x in suffixes if x), None)
    if base is None:
        return []
    lines = [
        "| case | tool, mode | uv | lockd" + base + " | lockd | lockd / lockd" + base + " |",
        "|---|---|---|---|---|---|",
    ]
    for case in ix.cases:
        for tool, mode in (("lockd-http", "cold"), ("lockd-http", "warm"), ("lockd-http", "cached"),
                           ("lockd-cli", "cold"), ("lockd-cli", "warm")):  # fmt: skip
            before, after = ix.med(case, tool + base, mode), ix.med(case, tool, mode)
            if before is None and after is None:
                continue
            cells = [
                case,
                f"{tool} {mode}",
                _s(ix.med(case, "uv", mode)),
                _s(before),
                _s(after),
                _x(_ratio(after, before)),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:90]


def _phase_table(rows: list[Measurement]) -> list[str]:
    phase_rows = [r for r in rows if r.section == "phases"]
    if not phase_rows:
        return []
    lines = [
        "| case | lockd | mode | total | " + " | ".join(PHASES) + " | CPU (process) | background thread-s |",
        "|" + "---|" * (len(PHASES) + 6),
    ]
    for r in phase_rows:
        if r.status != OK or not r.samples:
            lines.append(
                f"| {r.case} | {r.tool} | {r.mode} | {_short(r.headline)} |" + " |" * (len(PHASES) + 2)
            )
            continue
        med = median_phases(r)
        background = ", ".join(
            f"{k[4:]} {_s(v)}" for k, v in med.items() if k.startswith("bg: ") and v >= 0.0005
        )
        cells = [r.case, r.tool, r.mode, _s(r.median), *(_s(med.get(p, 0.0)) for p in PHASES), _s(med.get("cpu")),
                 background or "—"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    missing = sorted({m for r in phase_rows for m in r.extra.get("missing_hooks", [])})
    if missing:
        lines += [
            "",
            "Phases this lockd has no function for (their time is in the caller's phase): "
            + ", ".join(missing),
        ]
    return lines


def issue16_markdown(rows: list[Measurement], suffixes: list[str]) -> str:
    ix = _Index(rows)
    parts = [
        "### Issue 16: same footing as uv (medians; ratio = lockd / uv)",
        *_footing_table(ix, suffixes),
        "",
    ]
    compared = _before_after(ix, suffixes)
    if compared:
        parts += ["### Issue 16: before and after (same run, medians)", *compared, ""]
    phases = _phase_table(rows)
    if phases:
        parts += ["### Issue 16: where lockd's time goes (Service.lock in process, medians)", *phases, ""]
    parts += ["### Issue 16: verdicts", "```", *(v.line for v in issue16_verdicts(rows, suffixes)), "```", ""]
    return "\n".join(parts)
