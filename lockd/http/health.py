"""Liveness, readiness (database reachable, at head, writable; disk not full) and Prometheus metrics.

`/healthz` does no I/O and awaits nothing, so it answers whatever else the process is doing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lockd.http.deps import ServiceDep, in_thread

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database reachable, migrations at head, writes accepted, disk not nearly full",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    # The big pool: the write probe may wait for SQLite's write lock, and must not hold a read thread.
    state = await in_thread(request, service.readiness)
    body: dict[str, Any] = {
        "status": "ready" if state.ready else "not-ready",
        "database": state.database,
        "schema": state.schema,
        "head": state.head,
        "writable": state.writable,
        "disk_free_bytes": state.disk_free_bytes,
        "detail": state.detail,
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
