"""The dashboard's pages for named locks: a name, a proposal, and a revision's diff, as HTML.

`/dashboard/names/{name}` shows what a name serves, its latest drift verdict (or that no run
has checked it yet) with the reasons, the open proposal's diff with the exact command that
promotes it, and the name's history, each move or promotion linking to its diff.
`/dashboard/proposals/{n}` is one proposal; `/dashboard/locks/{digest}/revisions/{n}` what
revision n changed from n - 1. Server-rendered, autoescaped, readable without JavaScript.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from lockd.errors import NotFound
from lockd.http import names as _names  # noqa: F401  (registers the {name:lockname} path convertor)
from lockd.http.dashboard import html_page
from lockd.http.deps import (
    NamesDep,
    ServiceDep,
    allow_name,
    in_read_thread,
    page_access,
    public_base,
    requires,
)
from lockd.lock import Lock
from lockd.lock_diff import diff_locks
from lockd.names import Names
from lockd.proposals import ProposalView
from lockd.service import Service
from lockd.stored import StoredInput

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], include_in_schema=False)

_READ = [Depends(page_access), Depends(requires("read"))]
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _target(stored: StoredInput) -> str:
    return " · ".join([stored.platform, f"py{stored.python}", stored.cuda or "none"])


def _command(base: str, proposal: ProposalView, name: str | None) -> str:
    owner = f"/v1/names/{name}" if name is not None else f"/v1/locks/{proposal.input_digest}"
    url = f"{base.rstrip('/')}{owner}/proposals/{proposal.id}/promote"
    return f'curl -fsS -X POST -H "Authorization: Bearer $LOCKD_TOKEN" {url}'


def _lock(service: Service, lock_digest: str) -> Lock:
    return Lock.from_json(service.lock_file(lock_digest, "json").content)


def _name_page(service: Service, names: Names, name: str, base: str) -> dict[str, Any]:
    view = names.get(name)
    status = names.status(name=name)
    drift = status.drift
    findings = [] if drift is None else [f for f in drift.findings if f.kind != "current"]
    proposal = status.proposal
    return {
        "view": view,
        "status": status,
        "stored": service.stored_input(view.input_digest),
        "target": _target(service.stored_input(view.input_digest)),
        "findings": findings,
        "proposal": proposal,
        "command": None if proposal is None else _command(base, proposal, name),
        "history": list(reversed(names.history(name))),
        "provenance": names.provenance(view.revision.lock_digest),
        "proposals": names.proposals(view.input_digest),
    }


def _proposal_page(service: Service, names: Names, n: int, base: str) -> dict[str, Any]:
    proposal = names.proposal(n)
    named = [view.name for view in names.list() if view.input_digest == proposal.input_digest]
    return {
        "proposal": proposal,
        "names": named,
        "stored": service.stored_input(proposal.input_digest),
        "command": _command(base, proposal, named[0] if named else None)
        if proposal.status == "open"
        else None,
    }


def _revision_page(service: Service, input_digest: str, n: int) -> dict[str, Any]:
    revision = service.revision(input_digest, n)
    new = _lock(service, revision.lock_digest)
    previous = service.revision(input_digest, n - 1) if n > 1 else None
    diff = None if previous is None else diff_locks(_lock(service, previous.lock_digest), new)
    return {
        "revision": revision,
        "previous": previous,
        "diff": diff,
        "packages": new.packages,
        "stored": service.stored_input(input_digest),
    }


async def _render(request: Request, template: str, build: Any) -> HTMLResponse:
    try:
        context = await in_read_thread(request, build)
    except NotFound as exc:
        return html_page("not_found.html", {"message": exc.message, "hint": exc.hint}, status_code=404)
    return html_page(template, context)


@router.get("/dashboard/names/{name:lockname}", response_class=HTMLResponse, dependencies=_READ)
async def name_page(request: Request, service: ServiceDep, names: NamesDep, name: str) -> HTMLResponse:
    allow_name(request, name)
    base = public_base(request)
    return await _render(request, "name.html", lambda: _name_page(service, names, name, base))


@router.get("/dashboard/proposals/{n}", response_class=HTMLResponse, dependencies=_READ)
async def proposal_page(request: Request, service: ServiceDep, names: NamesDep, n: Number) -> HTMLResponse:
    base = public_base(request)
    return await _render(request, "proposal.html", lambda: _proposal_page(service, names, n, base))


@router.get("/dashboard/locks/{input_digest}/revisions/{n}", response_class=HTMLResponse, dependencies=_READ)
async def revision_page(request: Request, service: ServiceDep, input_digest: str, n: Number) -> HTMLResponse:
    return await _render(request, "revision.html", lambda: _revision_page(service, input_digest, n))
