"""Why a package is in a stored lock: `GET /v1/locks/{input_digest}/why/{package}`.

JSON by default (`lockd.why.Why.to_json`), plain text when the Accept header prefers
`text/plain`. The server keeps the canonical input, not the requirements.in it came from, so a
first step's `line` is its requirement's position in the canonical input (sorted by normal
form) and the answer's `lines` says `canonical input`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from packaging.requirements import Requirement
from pydantic import BaseModel

from lockd.http.deps import ServiceDep, in_read_thread, requires
from lockd.http.problems import ERROR_RESPONSES
from lockd.inputs import InputRequirement
from lockd.lock import Lock
from lockd.service import Service
from lockd.why import CANONICAL_INPUT, Why, render_why_text, why

__all__ = ["WhyOut", "prefers_text", "router", "stored_why"]

router = APIRouter(tags=["locks"])

Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256, 64 lowercase hex digits")]
Package = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$", description="a project name")]


class WhyOut(BaseModel):
    input_digest: str
    lock_digest: str
    package: str
    version: str
    paths: list[dict[str, Any]]  # each `{"steps": [...]}`, root requirement first
    truncated: bool
    lines: str  # what each first step's `line` counts: positions in the canonical input


def stored_why(service: Service, input_digest: str, package: str) -> tuple[str, Why]:
    """The current revision's lock digest and the answer, lines from the stored canonical input."""
    current, file = service.current_file(input_digest, "json")
    stored = service.stored_input(input_digest)
    requirements = [
        InputRequirement(requirement=Requirement(text), line=position, text=text)
        for position, text in enumerate(stored.requirements, start=1)
    ]
    lock = Lock.from_json(file.content)
    return current.lock_digest, why(lock, package, requirements=requirements, lines=CANONICAL_INPUT)


def _quality(accept: str, wanted: str) -> float:
    """The q-value `accept` gives `wanted` (a type/subtype), counting `type/*` and `*/*`."""
    best = 0.0
    for part in accept.split(","):
        media, *params = (piece.strip().lower() for piece in part.split(";"))
        kind = wanted.split("/", 1)[0]
        if media not in (wanted, f"{kind}/*", "*/*"):
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


def prefers_text(accept: str | None) -> bool:
    """Text only when asked for it more than JSON: JSON is the default and wins ties."""
    if not accept:
        return False
    return _quality(accept, "text/plain") > _quality(accept, "application/json")


@router.get(
    "/v1/locks/{input_digest}/why/{package}",
    response_model=WhyOut,
    dependencies=[Depends(requires("read"))],
    summary="Every path from a root requirement to a package of the current revision (JSON or text)",
    responses={200: {"content": {"text/plain": {}}}, **ERROR_RESPONSES},
)
async def get_why(request: Request, service: ServiceDep, input_digest: Digest, package: Package) -> Any:
    lock_digest, answer = await in_read_thread(request, lambda: stored_why(service, input_digest, package))
    headers = {"Lock-Digest": lock_digest, "Vary": "Accept"}
    if prefers_text(request.headers.get("accept")):
        return Response(render_why_text(answer), media_type="text/plain; charset=utf-8", headers=headers)
    body = WhyOut(input_digest=input_digest, lock_digest=lock_digest, **answer.to_json())
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
