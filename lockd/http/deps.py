"""Dependencies shared by the routers: the service, drift runs, the thread pools, and bearer-token scopes.

Scopes nest: `admin` ⊃ `lock` ⊃ `read`. Reads may be anonymous (`LOCKD_ANONYMOUS_READ`);
everything else needs `Authorization: Bearer <token>`. A missing or unknown token is 401,
a token without the scope 403. The token itself is hashed by the service and never logged.
A known token's scopes are cached by `lockd.tokens` for a few seconds (`TOKEN_CACHE_SECONDS`),
which bounds how long a revoked token keeps working.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request

from lockd.drift_runs import DriftRuns
from lockd.errors import Forbidden, Unauthorized
from lockd.service import Service

__all__ = ["DriftRunsDep", "ServiceDep", "in_read_thread", "in_thread", "requires"]

_T = TypeVar("_T")


async def _service(request: Request) -> Service:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


async def _drift_runs(request: Request) -> DriftRuns:
    runs: DriftRuns = request.app.state.drift_runs
    return runs


DriftRunsDep = Annotated[DriftRuns, Depends(_drift_runs)]


async def in_thread(request: Request, function: Callable[[], _T]) -> _T:
    """Run work that may resolve or wait on a resolution off the event loop, on the app's big pool."""
    limiter: anyio.CapacityLimiter = request.app.state.limiter
    return await anyio.to_thread.run_sync(function, limiter=limiter)


async def in_read_thread(request: Request, function: Callable[[], _T]) -> _T:
    """Run a short database read off the event loop, on the app's small pool.

    Cache hits are a fraction of a millisecond of work each: sixteen of them on sixteen
    threads spent their time handing the GIL around (990 req/s, p99 88 ms on one SQLite
    worker under 16 connections); four threads serve the same load at 1450 req/s, p99 44 ms.
    """
    limiter: anyio.CapacityLimiter = request.app.state.read_limiter
    return await anyio.to_thread.run_sync(function, limiter=limiter)


def requires(scope: str) -> Callable[[Request], Awaitable[None]]:
    async def check(request: Request) -> None:
        service: Service = request.app.state.service
        header = request.headers.get("authorization")
        if header is None:
            if scope == "read" and service.settings.anonymous_read:
                return
            raise Unauthorized(
                f"this endpoint needs a token with the {scope!r} scope",
                hint="send `Authorization: Bearer <token>`; create one with `lockd token create --scope "
                + scope
                + "`",
            )
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be `Bearer <token>`")
        token = token.strip()
        # A token seen in the last few seconds is answered on the loop: no thread, no query.
        scopes = service.tokens.cached_scopes(token)
        if scopes is None:
            scopes = await in_read_thread(request, lambda: service.tokens.authenticate(token))
        if scopes is None:
            raise Unauthorized("unknown or revoked token")
        if scope not in scopes:
            raise Forbidden(
                f"this token lacks the {scope!r} scope",
                context={"required": scope, "granted": sorted(scopes)},
            )

    return check
