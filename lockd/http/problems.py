"""RFC 9457 problem details: every error lockd answers with is `application/problem+json`.

`LockdError`s keep their stable `code` and `status`; unknown routes, wrong methods, bad JSON
and validation errors are translated to the same shape, so a client has one error format.
An error whose context has `retry_after_seconds` (an overloaded server, a rate limit) says
when to come back in `Retry-After`. A client that hung up before its request was read is not
an error of ours: it is logged as status 499 (nginx's "client closed request"), without a
traceback, and answered with nothing, since nobody is listening.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from lockd.errors import LockdError, jsonable
from lockd.http.unknown import unknown_field_problem

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "ERROR_RESPONSES",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_SCHEMA",
    "ServerBusy",
    "install_problem_handlers",
    "problem_bytes",
    "problem_response",
]

log = logging.getLogger("lockd.http")

PROBLEM_MEDIA_TYPE = "application/problem+json"
CLIENT_CLOSED_REQUEST = 499
_TYPE_BASE = "urn:lockd:problem:"

# For the OpenAPI document: the shape of every error response.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "hint": {"type": "string"},
        "request_id": {"type": "string"},
        "context": {"type": "object"},
    },
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
    for status, description in (
        (400, "Malformed request"),
        (401, "Token missing or unknown"),
        (403, "Token lacks the scope"),
        (404, "Not found"),
        (413, "Body or requirement count over the limit"),
        (415, "Wrong content type"),
        (408, "The request body did not arrive in time"),
        (422, "Invalid requirements or target, or no resolution"),
        (429, "Too many new resolutions for this token: see Retry-After"),
        (502, "Package index unavailable or serving bad files"),
        (503, "Database unavailable, or too many resolutions running: see Retry-After"),
        (504, "Resolution exceeded its time budget"),
    )
}


class ServerBusy(LockdError):
    """This process is at one of its limits (bodies being read, resolutions running): come back
    after `retry_after_seconds`, which the answer's `Retry-After` repeats."""

    code = "server-busy"
    status = 503
    title = "Server busy"


# The userinfo of a URL (`https://user:token@mirror/simple/`): index URLs come from configuration
# and reach error messages (an unknown project names its index); their credentials must not.
_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub("***@", value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


_HTTP_CODES = {
    400: ("invalid-request", "Invalid request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Token lacks the required scope"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("input-too-large", "Input too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem_bytes(error: LockdError, *, instance: str, request_id: str | None) -> bytes:
    """`error` as the problem+json body `problem_response` sends (for answers made below FastAPI)."""
    return _problem_json(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.message,
        instance=instance,
        hint=error.hint,
        context=error.context,
        request_id=request_id,
    )


def _problem_json(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    hint: str | None,
    context: dict[str, Any] | None,
    request_id: str | None,
) -> bytes:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": _redact(detail),
        "code": code,
        "instance": instance,
    }
    if hint:
        body["hint"] = _redact(hint)
    if context:
        body["context"] = _redact(jsonable(context))
    if request_id:
        body["request_id"] = request_id
    # backslashreplace: a lone surrogate a client sent (and an error quotes) is no UTF-8.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace")


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    hint: str | None = None,
    context: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    content = _problem_json(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=request.url.path,
        hint=hint,
        context=context,
        request_id=getattr(request.state, "request_id", None),
    )
    return Response(content, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _lockd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LockdError)
    headers = {"WWW-Authenticate": 'Bearer realm="lockd"'} if exc.status == 401 else {}
    retry_after = exc.context.get("retry_after_seconds")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    if exc.status >= 500:
        log.warning("request failed", extra={"code": exc.code, "detail": _redact(exc.message)})
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.message,
        hint=exc.hint,
        context=exc.context,
        headers=headers,
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, LockdError):
        # FastAPI wraps errors raised while it reads a JSON body (our body limit) in a plain 400.
        return await _lockd_error(request, exc.__cause__)
    if isinstance(exc.__cause__, ClientDisconnect):
        return await _client_gone(request, exc.__cause__)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # The rest of what FastAPI wraps so: a JSON body that is not UTF-8 (UnicodeDecodeError)
        # or nests too deeply for the parser (RecursionError). Same problem as any other bad JSON.
        return problem_response(
            request,
            status=400,
            code="invalid-json",
            title="Invalid JSON",
            detail=f"the request body is not valid JSON ({type(exc.__cause__).__name__})",
        )
    code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        request, status=exc.status_code, code=code, title=title, detail=detail, headers=headers
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette names only the first route's."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        errors.append({"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))})
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return problem_response(
            request,
            status=400,
            code="invalid-json",
            title="Invalid JSON",
            detail="the request body is not valid JSON",
            context={"errors": errors},
        )
    unknown = unknown_field_problem(request, exc.errors())
    if unknown is not None:
        return await _lockd_error(request, unknown)
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    return problem_response(
        request,
        status=422,
        code="invalid-request",
        title="Invalid request",
        detail=f"{'.'.join(first['loc'])}: {first['msg']}",
        context={"errors": errors},
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    del request, exc
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        request,
        status=500,
        code="internal-error",
        title="Internal error",
        detail="an unexpected error occurred",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LockdError, _lockd_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
