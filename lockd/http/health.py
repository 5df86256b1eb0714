"""Liveness, readiness (database reachable, schema at head) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lockd.http.deps import ServiceDep, in_read_thread

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database reachable and migrations at head",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request, service: ServiceDep) -> JSONResponse:
    state = await in_read_thread(request, service.readiness)
    body: dict[str, Any] = {
        "status": "ready" if state.ready else "not-ready",
        "database": state.database,
        "schema": state.schema,
        "head": state.head,
        "detail": state.detail,
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
