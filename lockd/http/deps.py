"""Dependencies shared by the routers: the service, drift runs, the thread pools, and bearer-token scopes.

Scopes nest: `admin` ⊃ `lock` ⊃ `read`. Reads may be anonymous (`LOCKD_ANONYMOUS_READ`);
everything else needs `Authorization: Bearer <token>`. A missing or unknown token is 401,
a token without the scope 403. The token itself is hashed by the service and never logged.
A known token's scopes are cached by `lockd.tokens` for a few seconds (`TOKEN_CACHE_SECONDS`),
which bounds how long a revoked token keeps working. A token limited to lock names
(`vision/*`) is refused (403) by `allow_name` on anything outside them, including what has no
name at all (an unnamed lock, a refresh by digest); `actor` is the token's name, for history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from urllib.parse import urlencode

import anyio
from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from lockd.drift_runs import DriftRuns
from lockd.errors import Forbidden, Unauthorized
from lockd.names import Names
from lockd.naming import name_allowed
from lockd.service import Service
from lockd.tokens import Grant

__all__ = [
    "SCOPE_CHECK",
    "SESSION_COOKIE",
    "SIGN_IN",
    "DriftRunsDep",
    "NamesDep",
    "ServiceDep",
    "actor",
    "allow_name",
    "in_read_thread",
    "in_thread",
    "page_access",
    "public_base",
    "requires",
]

_T = TypeVar("_T")
# The dashboard's sign-in cookie (`lockd.http.sessions`): a short-lived read token, for /dashboard only.
SESSION_COOKIE = "lockd_session"
SIGN_IN = "/dashboard/sign-in"


async def _service(request: Request) -> Service:
    # async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request.
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


async def _drift_runs(request: Request) -> DriftRuns:
    runs: DriftRuns = request.app.state.drift_runs
    return runs


DriftRunsDep = Annotated[DriftRuns, Depends(_drift_runs)]


async def _names(request: Request) -> Names:
    names: Names = request.app.state.names
    return names


NamesDep = Annotated[Names, Depends(_names)]


def _grant(request: Request) -> Grant | None:
    grant: Grant | None = getattr(request.state, "grant", None)
    return grant


def actor(request: Request) -> str | None:
    """The name of the token that made this request (None when anonymous), for histories."""
    grant = _grant(request)
    return None if grant is None else grant.token_name


def public_base(request: Request) -> str:
    """Where people reach this server, for links and commands: LOCKD_PUBLIC_URL, else this request's."""
    configured: str | None = request.app.state.settings.public_url
    return configured or str(request.base_url)


def allow_name(request: Request, name: str | None) -> None:
    """403 unless this request's token may act on lock `name` (None: something without a name)."""
    grant = _grant(request)
    if (
        grant is None
        or grant.name_prefixes is None
        or (name is not None and name_allowed(grant.name_prefixes, name))
    ):
        return
    patterns = list(grant.name_prefixes)
    if name is None:
        raise Forbidden(
            "this token is limited to lock names and this has none",
            hint="lock under a name (name=…) or act through /v1/names/{name}/…",
            context={"name_prefixes": patterns},
        )
    raise Forbidden(
        f"this token may not act on the lock {name!r}", context={"name": name, "name_prefixes": patterns}
    )


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


async def page_access(request: Request) -> None:
    """Send a browser without credentials to the sign-in page (303) when anonymous reads are off."""
    service = request.app.state.service
    if service.settings.anonymous_read or "authorization" in request.headers:
        return
    if "text/html" not in request.headers.get("accept", ""):
        return  # an API client gets the 401 problem from `requires`
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        grant = service.tokens.cached_grant(session)
        if grant is None:
            grant = await in_read_thread(request, lambda: service.tokens.authorize(session))
        if grant is not None:
            return
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise HTTPException(303, headers={"Location": f"{SIGN_IN}?{urlencode({'next': here})}"})


# The attribute that marks `requires`' checks, so that `lockd.http.unknown` can find a route's
# and run them before it names an unknown parameter: a caller without the right token learns
# nothing of the route. Run twice for one request (that way, then as the route's dependency),
# a check checks once.
SCOPE_CHECK = "lockd_scope"


def requires(scope: str) -> Callable[[Request], Awaitable[None]]:
    """The route needs a token with `scope` (or a higher one); anonymous reads where allowed."""

    async def check(request: Request) -> None:
        if scope in getattr(request.state, "checked_scopes", ()):
            return
        service: Service = request.app.state.service
        header = request.headers.get("authorization")
        session = request.cookies.get(SESSION_COOKIE)
        if header is None and session and request.url.path.startswith("/dashboard"):
            header = None if service.settings.anonymous_read else f"Bearer {session}"
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
        grant = service.tokens.cached_grant(token)
        if grant is None:
            grant = await in_read_thread(request, lambda: service.tokens.authorize(token))
        if grant is None:
            raise Unauthorized("unknown or revoked token")
        if scope not in grant.scopes:
            raise Forbidden(
                f"this token lacks the {scope!r} scope",
                context={"required": scope, "granted": sorted(grant.scopes)},
            )
        request.state.grant = grant
        # Who to charge for new resolutions (`lockd.http.admission`): the token's hash, never the token.
        request.state.token_key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        request.state.checked_scopes = (*getattr(request.state, "checked_scopes", ()), scope)

    setattr(check, SCOPE_CHECK, scope)
    return check
