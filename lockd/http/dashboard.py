"""The drift dashboard: server-rendered HTML (Jinja2, autoescaped), readable without JavaScript.

`GET /dashboard` shows the newest complete drift run: counts of locks by status with
severity colours, a history chart of those counts over recent runs drawn here as inline
SVG, and a table of locks filtered by status and target through plain links and a GET form.
`GET /dashboard/locks/{input_digest}` shows one lock's diff: versions old → new, files that
vanished, were yanked or changed hash, why it no longer resolves, and its stored revisions.
Every value reaches the page through Jinja2's autoescaping; nothing is marked safe.

The overview leads with every active name (`lockd.name_views.overview`), checked or not yet,
with a reason column; the name, proposal and revision pages are `lockd.http.name_pages`, the
sign-in that lets a browser in when anonymous reads are off is `lockd.http.sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lockd.drift import FILE_KINDS, FINDING_KIND_TABLE, FINDING_KINDS, SEVERITY, FindingKind
from lockd.drift_runs import DriftRuns
from lockd.drift_views import (
    DriftLockView,
    DriftResultView,
    DriftRunView,
    drift_findings,
    drift_lock,
    drift_results,
)
from lockd.errors import InvalidRequest, NotFound
from lockd.http.deps import DriftRunsDep, ServiceDep, in_read_thread, page_access, requires
from lockd.name_views import overview
from lockd.render import FILE_NAMES
from lockd.service import Service

__all__ = ["COLOURS", "Bar", "HistoryChart", "history_chart", "html_page", "router", "templates"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)

COLOURS: Mapping[FindingKind, str] = {kind.name: kind.colour for kind in FINDING_KIND_TABLE}
_NOT_COMPLETE = "#6b7280"
_HISTORY_RUNS = 30
_CHART_W, _CHART_H = 720, 220
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44, 12, 12, 34


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # on for every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        colours=COLOURS, kinds=FINDING_KINDS, file_names=FILE_NAMES, not_complete=_NOT_COMPLETE
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True, slots=True)
class HistoryChart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)
    x_labels: tuple[tuple[float, str], ...]  # (x centre, run id)
    baseline: float
    left: float
    right: float


def history_chart(runs: Sequence[DriftRunView]) -> HistoryChart:
    """Stacked bars of locks by status per run, oldest left; runs that did not complete are grey."""
    plot_w = _CHART_W - _PAD_L - _PAD_R
    plot_h = _CHART_H - _PAD_T - _PAD_B
    baseline = _PAD_T + plot_h
    top = max([r.locks_checked for r in runs if r.status == "complete"] + [r.locks_total for r in runs] + [1])
    slot = plot_w / max(len(runs), 1)
    width = max(min(slot * 0.7, 40.0), 2.0)
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    every = max(1, len(runs) // 10)
    for i, run in enumerate(runs):
        x = _PAD_L + i * slot + (slot - width) / 2
        if i % every == 0 or i == len(runs) - 1:
            labels.append((x + width / 2, f"#{run.id}"))
        when = _when(run.started_at)
        if run.status != "complete":
            height = plot_h * 0.08
            bars.append(
                Bar(x, baseline - height, width, height, _NOT_COMPLETE, f"run {run.id} {run.status}, {when}")
            )
            continue
        y = float(baseline)
        # Least severe at the bottom, so the alarming kinds sit on top where the eye lands.
        for kind in sorted(FINDING_KINDS, key=lambda k: SEVERITY[k]):
            count = run.counts[kind]
            if not count:
                continue
            height = plot_h * count / top
            y -= height
            bars.append(Bar(x, y, width, height, COLOURS[kind], f"run {run.id}, {when}: {count} {kind}"))
    ticks = tuple((baseline - plot_h * value / top, value) for value in sorted({0, top // 2, top}))
    return HistoryChart(
        width=_CHART_W,
        height=_CHART_H,
        bars=tuple(bars),
        y_ticks=ticks,
        x_labels=tuple(labels),
        baseline=baseline,
        left=_PAD_L,
        right=_CHART_W - _PAD_R,
    )


def _target(result: DriftResultView, runtimes: Mapping[str, str]) -> str:
    """`linux_x86_64 · py3.11.0 · cu128`; without a variant `none`, and the runtime it pulls."""
    parts = [result.platform, f"py{result.python}", result.cuda or "none"]
    runtime = runtimes.get(result.lock_digest)
    if result.cuda is None and runtime is not None:
        parts.append(runtime)  # PyPI's torch is a CUDA build: such a lock is never "cpu"
    return " · ".join(parts)


def _matches(
    result: DriftResultView, status: str | None, platform: str | None, python: str | None, cuda: str | None
) -> bool:
    if status and result.status != status:
        return False
    if platform and result.platform != platform:
        return False
    # "3.11" selects 3.11.0 and 3.11.7: people name Python by its minor version
    if python and result.python != python and not result.python.startswith(python + "."):
        return False
    return not cuda or (result.cuda or "none") == cuda


def _overview(
    service: Service,
    runs: DriftRuns,
    *,
    status: str | None,
    platform: str | None,
    python: str | None,
    cuda: str | None,
) -> dict[str, Any]:
    if status and status not in FINDING_KINDS:
        raise InvalidRequest(f"unknown status {status!r}", hint="use one of: " + ", ".join(FINDING_KINDS))
    latest = runs.latest()
    history = runs.list(limit=_HISTORY_RUNS)
    in_progress = next((r for r in reversed(history) if r.status == "running"), None)
    results = [] if latest is None else drift_results(service, latest.id)
    shown = [r for r in results if _matches(r, status, platform, python, cuda)]
    runtimes = service.accelerator_runtimes([r.lock_digest for r in shown])
    # The reason a lock has its status: the first finding of that kind.
    statuses = {r.input_digest: r.status for r in results}
    reasons: dict[str, str] = {}
    for digest, finding in [] if latest is None else drift_findings(service, latest.id):
        if finding.kind == statuses.get(digest):
            reasons.setdefault(digest, finding.message)
    return {
        "names": overview(service.engine),
        "reasons": reasons,
        "latest": latest,
        "in_progress": in_progress,
        "chart": history_chart(history),
        "runs": history,
        "results": shown,
        "total": len(results),
        "target": lambda result: _target(result, runtimes),
        "filters": {
            "status": status or "",
            "platform": platform or "",
            "python": python or "",
            "cuda": cuda or "",
        },
        "platforms": sorted({r.platform for r in results}),
        "pythons": sorted({r.python for r in results}),
        "cudas": sorted({r.cuda or "none" for r in results}),
    }


def _lock_page(service: Service, input_digest: str) -> dict[str, Any]:
    view: DriftLockView = drift_lock(service, input_digest)
    findings = view.findings
    return {
        "view": view,
        "result": view.result,
        "target": _target(view.result, service.accelerator_runtimes([view.result.lock_digest])),
        "versions": [f for f in findings if f.kind == "outdated"],
        "files": [f for f in findings if f.kind in FILE_KINDS],
        "errors": [f for f in findings if f.kind == "unresolvable"],
        "current": [f for f in findings if f.kind == "current"],
    }


_ENV = templates()


def html_page(name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(name).render(**context), status_code=status_code)


@router.get(
    "/dashboard", response_class=HTMLResponse, dependencies=[Depends(page_access), Depends(requires("read"))]
)
async def dashboard(
    request: Request,
    service: ServiceDep,
    runs: DriftRunsDep,
    *,
    status: Annotated[str | None, Query()] = None,
    platform: Annotated[str | None, Query()] = None,
    python: Annotated[str | None, Query()] = None,
    cuda: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    context = await in_read_thread(
        request, lambda: _overview(service, runs, status=status, platform=platform, python=python, cuda=cuda)
    )
    return html_page("dashboard.html", context)


@router.get(
    "/dashboard/locks/{input_digest}",
    response_class=HTMLResponse,
    dependencies=[Depends(page_access), Depends(requires("read"))],
)
async def dashboard_lock(request: Request, service: ServiceDep, input_digest: str) -> HTMLResponse:
    try:
        context = await in_read_thread(request, lambda: _lock_page(service, input_digest))
    except NotFound as exc:
        return html_page("not_found.html", {"message": exc.message, "hint": exc.hint}, status_code=404)
    return html_page("lock.html", context)
