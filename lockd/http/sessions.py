"""Dashboard sign-in: a read token exchanged for a short-lived, HttpOnly session cookie.

When anonymous reads are off, a browser cannot send `Authorization` headers from links. A
person signs in once with a token (any scope reads); lockd issues a new `read` token that
expires after LOCKD_SESSION_TTL (limited to the same names as the one presented) and sets it
as the cookie `lockd_session`: HttpOnly (no script reads it), SameSite=Strict (no other site
sends it), Secure over HTTPS, and sent to `/dashboard` only, where `requires("read")` takes it.
The API never reads the cookie, so it cannot be used to change anything. `deps.page_access`
sends a browser (Accept: text/html) without a working session here instead of a 401.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lockd.http.dashboard import html_page
from lockd.http.deps import SESSION_COOKIE, SIGN_IN, ServiceDep, in_read_thread, in_thread

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)

_SIGN_IN = SIGN_IN


def _next(value: str | None) -> str:
    """Where to go after signing in: a dashboard page of this server, never another site."""
    if value and value.startswith("/dashboard") and not value.startswith("//"):
        return value
    return "/dashboard"


def _form(request: Request, *, next_page: str, error: str | None, status: int) -> HTMLResponse:
    return html_page("sign_in.html", {"next": next_page, "error": error}, status_code=status)


@router.get(_SIGN_IN, response_class=HTMLResponse)
async def sign_in_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000, description="the dashboard page to return to")] = None,
) -> HTMLResponse:
    return _form(request, next_page=_next(next), error=None, status=200)


@router.post(_SIGN_IN, response_class=HTMLResponse)
async def sign_in(request: Request, service: ServiceDep) -> Response:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    next_page = _next((fields.get("next") or [""])[0])
    grant = await in_read_thread(request, lambda: service.tokens.authorize(token)) if token else None
    if grant is None or "read" not in grant.scopes:
        return _form(
            request, next_page=next_page, error="That token is unknown, revoked or expired.", status=401
        )
    ttl = service.settings.session_ttl
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    session = await in_thread(
        request,
        lambda: service.tokens.create(
            name=f"dashboard session of {grant.token_name}"[:200],
            scope="read",
            expires_at=expires,
            name_prefixes=grant.name_prefixes,
        ),
    )
    answer = RedirectResponse(next_page, status_code=303)
    secure = request.url.scheme == "https" or (service.settings.public_url or "").startswith("https://")
    answer.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=int(ttl),
        path="/dashboard",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post("/dashboard/sign-out")
async def sign_out() -> Response:
    answer = RedirectResponse(_SIGN_IN, status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return answer
