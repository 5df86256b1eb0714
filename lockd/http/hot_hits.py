"""Repeated `POST /lock` cache hits answered before routing, from memory.

A CI fleet sends the same `POST /lock` all day. Of a cache hit's ~0.6 ms in FastAPI, half went
to parsing and validating the route's thirteen query parameters and its dependencies, work whose
outcome cannot change for a byte-identical request. So the route remembers (`HotHits.remember`)
a request it answered with a stored lock, keyed by what decides the answer: the query string,
the body, its content type and `Accept`. `HotHitsMiddleware` answers the next identical request
itself when everything else is in memory and fresh: the bearer token is known (`Tokens.cached_grant`)
with the `lock` scope and no name limits, and the input's current revision, its file, its
canonical lock and its advisories are kept (`Service.cached_lock_and_file`). The answer is the
route's, byte for byte and header for header (`lock_writes.hit_headers`). Anything missing, or
any other request, goes to the route as if this layer were not there (the body is replayed).
It sits inside `RequestObserver`, so limits, logs, metrics and security headers still apply.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockd.http.files import file_response
from lockd.http.lock_writes import hit_headers
from lockd.http.metrics import Metrics
from lockd.inputs import LockRequest
from lockd.memory_cache import BoundedCache
from lockd.service import Service

__all__ = ["HotHits", "HotHitsMiddleware"]

_REMEMBERED = 4096
_MAX_BODY = 64 * 1024  # a requirements.in of a few hundred lines; larger ones take the route

_Key = tuple[bytes, bytes, str, str]


def _key(scope: Scope, body: bytes) -> _Key:
    content_type = accept = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
    return (scope.get("query_string", b""), body, content_type, accept)


class HotHits:
    """Requests the route answered with a stored lock: key → (the request it built, the format)."""

    def __init__(self) -> None:
        self._asked: BoundedCache[_Key, tuple[LockRequest, str]] = BoundedCache(_REMEMBERED)

    def remember(self, request: Request, body: bytes, lock_request: LockRequest, fmt: str) -> None:
        if len(body) <= _MAX_BODY:
            self._asked.put(_key(request.scope, body), (lock_request, fmt))

    def find(self, scope: Scope, body: bytes) -> tuple[LockRequest, str] | None:
        return self._asked.get(_key(scope, body))


class HotHitsMiddleware:
    def __init__(self, app: ASGIApp, *, hits: HotHits, service: Service, metrics: Metrics) -> None:
        self.app = app
        self.hits = hits
        self.service = service
        self.metrics = metrics
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/lock":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if not message.get("more_body", False) or len(body) > _MAX_BODY:
                    break
        except Exception as exc:  # a body limit: the route answers it as ever
            failure: Exception | None = exc
        else:
            failure = None

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            if failure is not None:
                raise failure
            return await receive()

        answer = None if failure is not None or len(body) > _MAX_BODY else self._answer(scope, body)
        if answer is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = self._lock_route(scope)  # the access log and metrics name the route
        await answer(scope, replay, send)

    def _answer(self, scope: Scope, body: bytes) -> Any:
        found = self.hits.find(scope, body)
        if found is None or not self._may_lock(scope):
            return None
        lock_request, fmt = found
        stored = self.service.cached_lock_and_file(lock_request, fmt)
        if stored is None:
            return None
        result, record = stored
        canonical = self.service.cached_file(result.lock_digest, "json")
        advisories = self.service.advisories.cached(result.lock_digest)
        if canonical is None or advisories is None:
            return None
        headers = hit_headers(result, lock_request, canonical.content, advisories.headers())
        self.metrics.observe_lock(result)
        return file_response(Request(scope), record, status=200, headers=headers)

    def _may_lock(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if header is None:
            return False
        kind, _, token = header.decode("latin-1").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return False
        grant = self.service.tokens.cached_grant(token.strip())
        return grant is not None and "lock" in grant.scopes and grant.name_prefixes is None

    def _lock_route(self, scope: Scope) -> Any:
        if self._route is None:
            app = scope.get("app")
            routes = getattr(getattr(app, "router", None), "routes", ())
            self._route = next(
                (
                    r
                    for r in routes
                    if getattr(r, "path", None) == "/lock" and "POST" in getattr(r, "methods", ())
                ),
                None,
            )
        return self._route
