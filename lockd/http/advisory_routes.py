"""A stored lock's advisories: `GET /v1/locks/{input_digest}/advisories`, and the lock headers.

What advisories affect a lock changes while the lock does not, so they are never in a rendered
file: this route and the `Lockd-Advisories` / `Lockd-Advisory-Ids` headers of the lock routes
answer from the advisory sources when asked (`lockd.advisory_check`). An unavailable source is
`"status": "unavailable"` with its reason, never an empty list that reads as "no advisories".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from lockd.advisory_check import LockAdvisories
from lockd.http.deps import ServiceDep, in_read_thread, in_thread, requires
from lockd.http.problems import ERROR_RESPONSES
from lockd.lock import Lock
from lockd.service import Service

__all__ = ["LockAdvisoriesOut", "advisory_headers", "router"]

router = APIRouter(tags=["locks"])

Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256, 64 lowercase hex digits")]


class LockAdvisoriesOut(BaseModel):
    input_digest: str
    revision: int
    lock_digest: str
    status: str  # checked | unavailable | off
    count: int
    advisories: list[dict[str, Any]]  # one per package and advisory: ids, severity, fixed versions
    error: str | None
    sources: list[str]
    refuse_at: str | None  # the lock-time policy, LOCKD_REFUSE_ADVISORIES_AT
    links: dict[str, str]


def check_stored_lock(service: Service, lock_digest: str) -> LockAdvisories:
    """The advisories of a stored lock (may block on a source: call it on the big pool)."""
    lock = Lock.from_json(service.lock_file(lock_digest, "json").content)
    return service.advisories.check(lock)


async def advisory_headers(request: Request, service: Service, lock_digest: str) -> dict[str, str]:
    """The advisory headers of a lock response: a kept answer, or the sources asked off the loop."""
    answer = service.advisories.cached(lock_digest)
    if answer is None:
        answer = await in_thread(request, lambda: check_stored_lock(service, lock_digest))
    return answer.headers()


@router.get(
    "/v1/locks/{input_digest}/advisories",
    response_model=LockAdvisoriesOut,
    dependencies=[Depends(requires("read"))],
    summary="Advisories (OSV) affecting the current revision's pins, as the sources know them now",
    responses=ERROR_RESPONSES,
)
async def get_lock_advisories(
    request: Request, service: ServiceDep, input_digest: Digest
) -> LockAdvisoriesOut:
    current = await in_read_thread(request, lambda: service.current(input_digest))
    answer = await in_thread(request, lambda: check_stored_lock(service, current.lock_digest))
    body = answer.to_json()
    return LockAdvisoriesOut(
        input_digest=input_digest,
        revision=current.n,
        lock_digest=current.lock_digest,
        status=body["status"],
        count=body["count"],
        advisories=body["advisories"],
        error=body["error"],
        sources=body["sources"],
        refuse_at=service.advisories.refuse_at,
        links={"lock": f"/v1/locks/{input_digest}", "dashboard": f"/dashboard/locks/{input_digest}"},
    )
