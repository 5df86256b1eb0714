"""ASGI middleware, what every request passes through: request id, body limits, security
headers, structured access log and request metrics.

The body is limited in size and in time while it is read: a lying or absent Content-Length
cannot get past the size, and a client that drips its body (slowloris) gets 408 once
`body_timeout` seconds have passed since its request began, and its connection is closed. At
most `max_body_reads` bodies are read at once; past that a request with a body is answered
503 with `Retry-After` before a byte of it is read. Each dripped byte costs the event loop a
wake-up, and 3,000 dripping clients kept it so busy that `/healthz` waited seconds behind
them: the cap bounds that cost, while a real client's body, sent at once, holds its place for
microseconds. A response sent before its body was read closes the connection, so nothing
keeps reading for nobody. Every answer carries `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`
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
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockd.errors import InputTooLarge, LockdError
from lockd.http.metrics import Metrics
from lockd.http.problems import PROBLEM_MEDIA_TYPE, ServerBusy, problem_bytes

__all__ = ["HTML_POLICY", "OTHER_POLICY", "BodyLimits", "BodyTimeout", "RequestObserver"]

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


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyLimits:
    max_bytes: int
    timeout: float  # seconds from the start of the request
    max_reads: int  # bodies read at once in this process


class _Places:
    """How many bodies are being read now; touched on the event loop only, so without a lock."""

    def __init__(self) -> None:
        self.taken = 0


class _BodyReader:
    """One request's `receive`, limited in size and time, holding a reading place meanwhile."""

    def __init__(
        self, receive: Receive, headers: dict[str, str], limits: BodyLimits, places: _Places
    ) -> None:
        self._receive = receive
        self._limits = limits
        self._places = places
        self._deadline = time.monotonic() + limits.timeout
        self._declared = headers.get("content-length")
        self._received = 0
        self._holding = False
        # HTTP/1.1: without a length or chunked coding, a request has no body to wait for.
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.done = self._declared in (None, "0") and not chunked

    async def receive(self) -> Message:
        if self.done:  # after the body, a receive waits for the disconnect: no deadline
            return await self._receive()
        limit = self._limits.max_bytes
        if self._declared is not None and self._declared.isdigit() and int(self._declared) > limit:
            raise self._too_large()
        message: Message | None = None
        with anyio.move_on_after(self._deadline - time.monotonic()):
            message = await self._receive()
        if message is None:
            raise BodyTimeout(
                f"the request body did not arrive within {self._limits.timeout:g} seconds",
                hint="send the whole body at once, or raise LOCKD_BODY_TIMEOUT",
                context={"limit_seconds": self._limits.timeout, "received_bytes": self._received},
            )
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.done = True
                self.release()
            if self._received > limit:
                raise self._too_large()
        return message

    def take_place(self) -> ServerBusy | None:
        """Hold one of the places to read a body in, or say why there is none."""
        if self.done or self._holding:
            return None
        if self._places.taken >= self._limits.max_reads:
            return ServerBusy(
                f"{self._limits.max_reads} request bodies are being read; try again shortly",
                hint="send the body at once; an operator may raise LOCKD_MAX_BODY_READS",
                context={"limit": self._limits.max_reads, "retry_after_seconds": 1},
            )
        self._holding = True
        self._places.taken += 1
        return None

    def release(self) -> None:
        if self._holding:
            self._holding = False
            self._places.taken -= 1

    def _too_large(self) -> InputTooLarge:
        limit = self._limits.max_bytes
        return InputTooLarge(
            f"request body is larger than {limit} bytes",
            hint="lock smaller inputs, or raise LOCKD_MAX_BODY_BYTES",
            context={"limit_bytes": limit},
        )


async def _answer(send: Send, error: LockdError, content: bytes) -> None:
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(content)).encode()),
    ]
    retry_after = error.context.get("retry_after_seconds")
    if isinstance(retry_after, int):
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class RequestObserver:
    def __init__(self, app: ASGIApp, *, limits: BodyLimits, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.places = _Places()
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
        body = _BodyReader(receive, headers, self.limits, self.places)

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if not body.done:
                    extra.append((b"connection", b"close"))
                message["headers"] = _security_headers([*message.get("headers", []), *extra])
            await send(message)

        try:
            # Refused here, below routing and FastAPI: a flood of such requests costs little each.
            busy = body.take_place()
            if busy is None:
                await self.app(scope, body.receive, observed_send)
            else:
                await _answer(
                    observed_send, busy, problem_bytes(busy, instance=scope["path"], request_id=request_id)
                )
        finally:
            body.release()
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
