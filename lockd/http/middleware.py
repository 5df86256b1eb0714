"""ASGI middleware: request id, body-size limit, structured access log and request metrics.

The body limit is enforced while the body is read (a lying or absent Content-Length cannot
get past it). Logs carry method, route, status, duration and request id, never headers or
bodies, so tokens and requirements never reach them.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockd.errors import InputTooLarge
from lockd.http.metrics import Metrics

__all__ = ["RequestObserver"]

log = logging.getLogger("lockd.http")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestObserver:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
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
        declared = headers.get("content-length")
        received = 0

        def too_large() -> InputTooLarge:
            return InputTooLarge(
                f"request body is larger than {limit} bytes",
                hint="lock smaller inputs, or raise LOCKD_MAX_BODY_BYTES",
                context={"limit_bytes": limit},
            )

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large()
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
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
