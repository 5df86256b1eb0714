"""ASGI middleware, what every request passes through: request id, body limits, security
headers, structured access log and request metrics.

The body is limited in size and in time while it is read: a lying or absent Content-Length
cannot get past the size, and a client that drips its body (slowloris) gets 408 once
`body_timeout` seconds have passed since its request began, and its connection is closed. A
response sent before its body was read closes the connection too, so nothing keeps reading
for nobody. Every answer carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`
and a Content-Security-Policy: HTML pages may load scripts, styles and data from lockd itself
only (no inline script, no other origin), anything else nothing at all. Logs carry method,
route, status, duration and request id, never headers or bodies, so tokens and requirements
never reach them.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockd.errors import InputTooLarge, LockdError
from lockd.http.metrics import Metrics

__all__ = ["HTML_POLICY", "OTHER_POLICY", "BodyTimeout", "RequestObserver"]

log = logging.getLogger("lockd.http")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Inline styles stay allowed: the dashboard colours badges with `style=`; styles run no code.
HTML_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"


class BodyTimeout(LockdError):
    code = "request-timeout"
    status = 408
    title = "Request body too slow"


def _security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    content_type = next((value for name, value in headers if name.lower() == b"content-type"), b"")
    policy = HTML_POLICY if content_type.startswith(b"text/html") else OTHER_POLICY
    added = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", policy.encode()),
    ]
    return headers + [(name, value) for name, value in added if name not in names]


class RequestObserver:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        offered = headers.get("x-request-id", "")
        request_id = offered if _SAFE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500}
        limit = self.max_body_bytes
        timeout = self.body_timeout
        deadline = time.monotonic() + timeout
        declared = headers.get("content-length")
        received = 0
        # HTTP/1.1: without a length or chunked coding, a request has no body to wait for.
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        body_done = declared in (None, "0") and not chunked

        def too_large() -> InputTooLarge:
            return InputTooLarge(
                f"request body is larger than {limit} bytes",
                hint="lock smaller inputs, or raise LOCKD_MAX_BODY_BYTES",
                context={"limit_bytes": limit},
            )

        def too_slow() -> BodyTimeout:
            return BodyTimeout(
                f"the request body did not arrive within {timeout:g} seconds",
                hint="send the whole body at once, or raise LOCKD_BODY_TIMEOUT",
                context={"limit_seconds": timeout, "received_bytes": received},
            )

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, a receive waits for the disconnect: no deadline
                return await receive()
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise too_large()
            message: Message | None = None
            with anyio.move_on_after(deadline - time.monotonic()):
                message = await receive()
            if message is None:
                raise too_slow()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    raise too_large()
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if not body_done:
                    extra.append((b"connection", b"close"))
                message["headers"] = _security_headers([*message.get("headers", []), *extra])
            await send(message)

        try:
            await self.app(scope, limited_receive, observed_send)
        finally:
            self._record(scope, status["code"], time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(method=scope["method"], route=template, status=str(status)).inc()
        self.metrics.request_seconds.labels(route=template).observe(seconds)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "route": template,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            },
        )
