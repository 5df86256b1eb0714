"""The benchmark's verdict: Markdown tables of every section and the issue's targets, met or not.

Targets (issue 8, medians on a 2-core machine): cache hits ≥ 1000 req/s with p99 < 20 ms; warm
resolution ≤ 0.5 × uv warm on every case; cold ≤ 1.0 × uv cold on fixture cases with injected
latency and ≤ 1.5 × on real PyPI; ≥ 50 × faster than pip-compile on torch cases; bytes fetched
< 1 % of the pinned files' size on torch cases; a warm drift run over 1000 locks in < 5 minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.timing import OK, Measurement

__all__ = ["LOCKD_TOOLS", "Verdict", "markdown", "verdicts"]

LOCKD_TOOLS = ("lockd-http", "lockd-cli", "lockd-inproc")
TORCH_CASES_HINT = ("torch", "vision", "audio")


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    scope: str  # which rows it was judged on
    met: bool | None  # None: nothing measured
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "scope": self.scope, "met": self.met, "detail": self.detail}


def _med(m: Measurement | None) -> float | None:
    return None if m is None else m.median


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _by(rows: Iterable[Measurement]) -> dict[tuple[str, str, str, str], Measurement]:
    return {(r.index, r.case, r.tool, r.mode): r for r in rows}


def _is_torch(case: str, torch_cases: set[str]) -> bool:
    return case in torch_cases


def _row_checks(
    key: tuple[str, str, str], index: dict[tuple[str, str, str, str], Measurement], torch_cases: set[str]
) -> list[tuple[str, bool | None, str]]:
    """(target, met, why) of one lockd row against uv and pip-compile on the same case and index."""
    where, case, tool = key
    cold, warm = index.get((where, case, tool, "cold")), index.get((where, case, tool, "warm"))
    uv_cold, uv_warm = index.get((where, case, "uv", "cold")), index.get((where, case, "uv", "warm"))
    pip_cold = index.get((where, case, "pip-compile", "cold"))
    pip_warm = index.get((where, case, "pip-compile", "warm"))
    checks: list[tuple[str, bool | None, str]] = []
    warm_ratio = _ratio(_med(warm), _med(uv_warm))
    checks.append(
        (
            "warm ≤ 0.5× uv",
            None if warm_ratio is None else warm_ratio <= 0.5,
            f"{_fmt_ratio(warm_ratio)} uv warm",
        )
    )
    limit = 1.0 if where.startswith("fixture") else 1.5
    cold_ratio = _ratio(_med(cold), _med(uv_cold))
    checks.append(
        (
            "cold ≤ 1.0× uv (fixture) / 1.5× (PyPI)",
            None if cold_ratio is None else cold_ratio <= limit,
            f"{_fmt_ratio(cold_ratio)} uv cold, limit {limit:g}×",
        )
    )
    # On the fixture index pip-compile downloads wheels of a few KiB, so its cost there says nothing
    # about a real torch stack: the 50× target is judged on real PyPI only.
    if _is_torch(case, torch_cases) and not where.startswith("fixture"):
        speedups = [
            x
            for x in (_ratio(_med(pip_cold), _med(cold)), _ratio(_med(pip_warm), _med(warm)))
            if x is not None
        ]
        met = None if not speedups else min(speedups) >= 50
        shown = "/".join(f"{x:.0f}×" for x in speedups) or "—"
        checks.append(("≥ 50× pip-compile", met, f"{shown} faster than pip-compile (cold/warm)"))
    return checks


def _verdict_text(checks: list[tuple[str, bool | None, str]]) -> str:
    parts = []
    for name, met, why in checks:
        if met is None:
            parts.append(f"{name}: n/a")
        else:
            parts.append(("yes" if met else "**NO**") + f" ({name}: {why})")
    return "; ".join(parts) if parts else "—"


def _resolution_table(rows: list[Measurement], torch_cases: set[str]) -> list[str]:
    index = _by(rows)
    lines = [
        "| index | case | tool | pins | cold | warm | cache hit | lockd/uv cold | lockd/uv warm | lockd/pip cold | lockd/pip warm | target met? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    seen: list[tuple[str, str, str]] = []
    for r in rows:
        if (r.index, r.case, r.tool) not in seen:
            seen.append((r.index, r.case, r.tool))
    for where, case, tool in seen:
        cold = index.get((where, case, tool, "cold"))
        warm = index.get((where, case, tool, "warm"))
        hit = index.get((where, case, tool, "hit"))
        status = next((m for m in (cold, warm) if m is not None and m.status != OK), None)
        pins = next(
            (
                s.extra.get("pins")
                for m in (cold, warm)
                if m is not None
                for s in m.samples
                if "pins" in s.extra
            ),
            None,
        )
        if status is not None and (cold is None or cold.status != OK):
            lines.append(f"| {where} | {case} | {tool} | — | {_cell(status.headline)} | | | | | | | |")
            continue
        uv_c, uv_w = (
            _med(index.get((where, case, "uv", "cold"))),
            _med(index.get((where, case, "uv", "warm"))),
        )
        pip_c, pip_w = (
            _med(index.get((where, case, "pip-compile", "cold"))),
            _med(index.get((where, case, "pip-compile", "warm"))),
        )
        is_lockd = tool in LOCKD_TOOLS
        verdict = _verdict_text(_row_checks((where, case, tool), index, torch_cases)) if is_lockd else ""
        lines.append(
            f"| {where} | {case} | {tool} | {pins if pins is not None else '—'} | {_fmt_s(_med(cold))} | {_fmt_s(_med(warm))} "
            f"| {_fmt_s(_med(hit))} "
            f"| {_fmt_ratio(_ratio(_med(cold), uv_c)) if is_lockd else ''} | {_fmt_ratio(_ratio(_med(warm), uv_w)) if is_lockd else ''} "
            f"| {_fmt_ratio(_ratio(_med(cold), pip_c)) if is_lockd else ''} | {_fmt_ratio(_ratio(_med(warm), pip_w)) if is_lockd else ''} "
            f"| {verdict} |"
        )
    return lines


def _serving_table(rows: list[Measurement]) -> list[str]:
    lines = [
        "| database, workers | endpoint | req/s | p50 | p99 | errors | peak RSS (all server processes) | target met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.status != OK:
            lines.append(f"| {r.case} | {r.tool} | {_cell(r.headline)} | | | | | |")
            continue
        e = r.extra
        met = _serving_met(r)
        lines.append(
            f"| {r.case} | {r.tool} | {e['requests_per_s']:.0f} | {e.get('p50_ms', 0):.1f} ms | {e.get('p99_ms', 0):.1f} ms "
            f"| {e.get('errors', 0)} | {e['peak_rss_total_mib']} MiB | {'yes' if met else '**NO**'} |"
        )
    return lines


def _bytes_table(rows: list[Measurement], torch_cases: set[str]) -> list[str]:
    lines = [
        "| index | case | pins | files pinned | pinned files' size | bytes fetched (lockd) | share | requests | range / whole | target met? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.status != OK or not r.samples:
            lines.append(f"| {r.index} | {r.case} | {_cell(r.headline)} | | | | | | | |")
            continue
        e = r.samples[0].extra
        share = _ratio(float(e["bytes_fetched"]), float(e["pinned_files_bytes"]) or None)
        judged = _is_torch(r.case, torch_cases) and not r.index.startswith("fixture")
        met = "" if not judged or share is None else ("yes" if share < 0.01 else "**NO**")
        if r.index.startswith("fixture"):
            met = "n/a: fixture files are a few KiB"
        lines.append(
            f"| {r.index} | {r.case} | {e['pins']} | {e['pinned_files']} | {_mib(e['pinned_files_bytes'])} "
            f"| {_mib(e['bytes_fetched'])} | {'—' if share is None else f'{share * 100:.3f} %'} | {e['requests']} "
            f"| {e['range_requests']} / {e['whole_downloads']} | {met} |"
        )
    return lines


def _mib(n: int | float) -> str:
    return f"{n / 1048576:.2f} MiB" if n >= 1048576 else f"{n / 1024:.1f} KiB"


def _scaling_tables(rows: list[Measurement]) -> list[str]:
    pins = [r for r in rows if r.section == "scaling-pins"]
    drift = [r for r in rows if r.section == "scaling-drift"]
    lines: list[str] = []
    if pins:
        lines += ["| requirement set | tool | pins | cold | warm |", "|---|---|---|---|---|"]
        index = _by(pins)
        seen: list[tuple[str, str, str]] = []
        for r in pins:
            if (r.index, r.case, r.tool) not in seen:
                seen.append((r.index, r.case, r.tool))
        for where, case, tool in seen:
            cold, warm = index.get((where, case, tool, "cold")), index.get((where, case, tool, "warm"))
            if cold is not None and cold.status != OK:
                lines.append(f"| {case} | {tool} | {_cell(cold.headline)} | | |")
                continue
            pins_n = next(
                (s.extra.get("pins") for m in (cold, warm) if m for s in m.samples if "pins" in s.extra), "—"
            )
            lines.append(
                f"| {case} | {tool} | {pins_n} | {_fmt_s(cold.median if cold else None)} | {_fmt_s(warm.median if warm else None)} |"
            )
        lines.append("")
    if drift:
        lines += ["| stored locks | drift run (warm) | target met? |", "|---|---|---|"]
        for r in drift:
            if r.status != OK:
                lines.append(f"| {r.case} | {_cell(r.headline)} | |")
                continue
            met = "" if r.extra.get("locks") != 1000 else ("yes" if (r.median or 0) < 300 else "**NO**")
            lines.append(f"| {r.case} | {_fmt_s(r.median)} | {met} |")
    return lines


def verdicts(rows: list[Measurement], torch_cases: set[str]) -> list[Verdict]:
    """Each target of the issue, judged over every row it applies to."""
    out: list[Verdict] = []
    serving = [r for r in rows if r.section == "serving" and r.status == OK]
    if serving:
        # One verdict per configuration and endpoint: met if some concurrency meets both limits.
        groups: dict[tuple[str, str], list[Measurement]] = {}
        for r in serving:
            groups.setdefault((r.case, r.tool.rsplit(",", 1)[0]), []).append(r)
        for (config, endpoint), group in groups.items():
            best = max(group, key=lambda r: (_serving_met(r), r.extra["requests_per_s"]))
            shown = ", ".join(
                f"{r.extra['connections']} conn.: {r.extra['requests_per_s']:.0f} req/s, p99 {r.extra.get('p99_ms', 0):.1f} ms"
                for r in group
            )
            out.append(
                Verdict(
                    "cache hits ≥ 1000 req/s, p99 < 20 ms", f"{config}, {endpoint}", _serving_met(best), shown
                )
            )
    else:
        out.append(Verdict("cache hits ≥ 1000 req/s, p99 < 20 ms", "serving", None, "not measured"))
    resolution = [r for r in rows if r.section == "resolution"]
    index = _by(resolution)
    for tool in LOCKD_TOOLS:
        keys = sorted({(r.index, r.case, r.tool) for r in resolution if r.tool == tool})
        by_target: dict[str, list[tuple[bool | None, str]]] = {}
        for key in keys:
            for name, met, why in _row_checks(key, index, torch_cases):
                by_target.setdefault(name, []).append((met, f"{key[1]} ({key[0]}): {why}"))
        for name, results in by_target.items():
            judged = [m for m, _ in results if m is not None]
            met = None if not judged else all(judged)
            misses = [why for m, why in results if m is False]
            out.append(
                Verdict(name, tool, met, "; ".join(misses) if misses else f"{len(judged)} case(s) judged")
            )
    # The fixture index serves synthetic files of a few KiB: a share of their size says nothing.
    byte_rows = [
        r
        for r in rows
        if r.section == "bytes"
        and r.status == OK
        and r.case in torch_cases
        and not r.index.startswith("fixture")
    ]
    if byte_rows:
        shares = []
        for r in byte_rows:
            e = r.samples[0].extra
            shares.append((r, e["bytes_fetched"] / max(1, e["pinned_files_bytes"])))
        bad = [f"{r.case} ({r.index}): {s * 100:.2f} %" for r, s in shares if s >= 0.01]
        detail = "; ".join(bad) or ", ".join(f"{r.case}: {s * 100:.3f} %" for r, s in shares)
        out.append(
            Verdict("bytes fetched < 1 % of pinned files (torch cases)", "lockd-inproc cold", not bad, detail)
        )
    drift = [
        r for r in rows if r.section == "scaling-drift" and r.status == OK and r.extra.get("locks") == 1000
    ]
    if drift:
        secs = drift[0].median or 0.0
        out.append(
            Verdict("drift over 1000 locks (warm) < 5 min", "lockd drift run", secs < 300, _fmt_s(secs))
        )
    return out


def markdown(rows: list[Measurement], torch_cases: set[str], notes: list[str]) -> str:
    """The whole report: notes, then one table per section, then the targets."""
    parts: list[str] = []
    if notes:
        parts += ["Notes:", *[f"- {n}" for n in notes], ""]
    resolution = [r for r in rows if r.section == "resolution"]
    if resolution:
        parts += ["### Resolution (medians)", *_resolution_table(resolution, torch_cases), ""]
    serving = [r for r in rows if r.section == "serving"]
    if serving:
        parts += ["### Serving cache hits (wrk)", *_serving_table(serving), ""]
    byte_rows = [r for r in rows if r.section == "bytes"]
    if byte_rows:
        parts += ["### Bytes fetched per cold resolution", *_bytes_table(byte_rows, torch_cases), ""]
    scaling = [r for r in rows if r.section.startswith("scaling")]
    if scaling:
        parts += ["### Scaling", *_scaling_tables(scaling), ""]
    parts += ["### Targets", "| target | judged on | met? | detail |", "|---|---|---|---|"]
    for v in verdicts(rows, torch_cases):
        shown = "n/a" if v.met is None else ("yes" if v.met else "**NO**")
        parts.append(f"| {v.target} | {v.scope} | {shown} | {v.detail} |")
    return "\n".join(parts) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _serving_met(r: Measurement) -> bool:
    e = r.extra
    return bool(e["requests_per_s"] >= 1000 and e.get("p99_ms", 1e9) < 20 and e.get("errors", 0) == 0)
