"""The names resource: named locks, their history and files, proposals and promotion, and status.

`POST /lock?name=…` (in `lockd.http.lock_writes`) moves a name; here a name is read
(`GET /v1/names/{name}`, its files, `…/history`), refreshed into a proposal (`…/refresh`),
and its proposals listed and promoted (`…/proposals/{n}/promote`, lock scope, 409 when the
name moved since). `…/status` (and `/v1/locks/{digest}/status`) is the per-lock gate CI
calls: the current revision, its latest drift verdict and the open proposal. An admin may
archive a name, delete it, or set its promotion policy. A name is `[a-z0-9][a-z0-9._-]*`
segments joined by `/` (`lockd.naming`); a token limited to name patterns acts only on those.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.convertors import Convertor, register_url_convertor

from lockd.http.admission import resolve_admitted
from lockd.http.deps import (
    NamesDep,
    ServiceDep,
    actor,
    allow_name,
    in_read_thread,
    in_thread,
    public_base,
    requires,
)
from lockd.http.files import FILE_CONTENT, FILE_FORMATS, file_response
from lockd.http.locks import Digest, lock_links
from lockd.http.models import FileName, RefreshInfo
from lockd.http.name_models import (
    NameEventOut,
    NameHistory,
    NameList,
    NameOut,
    PolicyBody,
    ProposalList,
    ProposalOut,
    StatusOut,
)
from lockd.http.problems import ERROR_RESPONSES as _ERRORS
from lockd.naming import NAME_SEGMENT, name_allowed
from lockd.service import RefreshResult

__all__ = ["router"]

router = APIRouter(tags=["names"])

ProposalNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="the proposal's id")]


class _LockNameConvertor(Convertor[str]):
    """A lock name, slashes included; the routes' trailing words are reserved (`lockd.naming`)."""

    regex = rf"{NAME_SEGMENT}(?:/{NAME_SEGMENT})*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("lockname", _LockNameConvertor())


@router.get(
    "/v1/names",
    response_model=NameList,
    dependencies=[Depends(requires("read"))],
    summary="Every active name (a token limited to name patterns sees those)",
    responses=_ERRORS,
)
async def list_names(request: Request, names: NamesDep) -> NameList:
    found = await in_read_thread(request, names.list)
    grant = getattr(request.state, "grant", None)
    patterns = None if grant is None else grant.name_prefixes
    shown = [view for view in found if name_allowed(patterns, view.name)]
    return NameList(items=[NameOut.of(view) for view in shown])


@router.get(
    "/v1/names/{name:lockname}/status",
    response_model=StatusOut,
    dependencies=[Depends(requires("read"))],
    summary="The per-lock gate: current revision, its latest drift verdict, the open proposal",
    responses=_ERRORS,
)
async def name_status(request: Request, names: NamesDep, name: str) -> StatusOut:
    allow_name(request, name)
    status = await in_read_thread(request, lambda: names.status(name=name))
    return StatusOut.of(status, base=public_base(request))


@router.get(
    "/v1/names/{name:lockname}/history",
    response_model=NameHistory,
    dependencies=[Depends(requires("read"))],
    summary="Every move and promotion of a name, oldest first, with who made it",
    responses=_ERRORS,
)
async def name_history(request: Request, names: NamesDep, name: str) -> NameHistory:
    allow_name(request, name)
    events = await in_read_thread(request, lambda: names.history(name))
    return NameHistory(name=name, events=[NameEventOut.of(event) for event in events])


@router.get(
    "/v1/names/{name:lockname}/proposals",
    response_model=ProposalList,
    dependencies=[Depends(requires("read"))],
    summary="The proposals for the name's current input, newest first",
    responses=_ERRORS,
)
async def name_proposals(request: Request, names: NamesDep, name: str) -> ProposalList:
    allow_name(request, name)
    found = await in_read_thread(request, lambda: names.proposals(names.get(name).input_digest))
    return ProposalList(items=[ProposalOut.of(p, base=public_base(request), name=name) for p in found])


@router.get(
    "/v1/names/{name:lockname}/proposals/{n}",
    response_model=ProposalOut,
    dependencies=[Depends(requires("read"))],
    summary="One proposal of the name's current input, with its diff",
    responses=_ERRORS,
)
async def name_proposal(request: Request, names: NamesDep, name: str, n: ProposalNumber) -> ProposalOut:
    allow_name(request, name)
    found = await in_read_thread(
        request, lambda: names.proposal(n, input_digest=names.get(name).input_digest)
    )
    return ProposalOut.of(found, base=public_base(request), name=name)


@router.post(
    "/v1/names/{name:lockname}/proposals/{n}/promote",
    response_model=ProposalOut,
    dependencies=[Depends(requires("lock"))],
    summary="Promote a proposal: the name serves its lock from now on (409 if the name moved since)",
    responses=_ERRORS,
)
async def promote_by_name(request: Request, names: NamesDep, name: str, n: ProposalNumber) -> ProposalOut:
    allow_name(request, name)
    who = actor(request)
    promoted = await in_thread(request, lambda: names.promote(n, actor=who, name=name))
    return ProposalOut.of(promoted, base=public_base(request), name=name)


@router.post(
    "/v1/names/{name:lockname}/refresh",
    response_model=RefreshInfo,
    dependencies=[Depends(requires("lock"))],
    summary="Re-resolve the name's input against the index now; a changed lock becomes a proposal",
    responses=_ERRORS,
)
async def refresh_name(request: Request, names: NamesDep, name: str) -> RefreshInfo:
    allow_name(request, name)
    who = actor(request)
    result = await resolve_admitted(request, f"name:{name}", lambda: names.refresh(name, actor=who))
    proposal = (
        None
        if result.proposal is None
        else ProposalOut.of(result.proposal, base=public_base(request), name=name)
    )
    return refresh_info(result, proposal)


@router.post(
    "/v1/names/{name:lockname}/archive",
    response_model=NameOut,
    dependencies=[Depends(requires("admin"))],
    summary="Archive a name: it keeps serving its lock, its input leaves drift",
    responses=_ERRORS,
)
async def archive_name(request: Request, names: NamesDep, name: str) -> NameOut:
    who = actor(request)
    return NameOut.of(await in_thread(request, lambda: names.archive(name, actor=who)))


@router.put(
    "/v1/names/{name:lockname}/policy",
    response_model=NameOut,
    dependencies=[Depends(requires("admin"))],
    summary="Set which of the name's proposals promote themselves (null: the server's policy)",
    responses=_ERRORS,
)
async def set_policy(request: Request, names: NamesDep, name: str, body: PolicyBody) -> NameOut:
    return NameOut.of(await in_thread(request, lambda: names.set_policy(name, body.auto_promote)))


@router.get(
    "/v1/names/{name:lockname}/{file:lockfile}",
    dependencies=[Depends(requires("read"))],
    summary="A file of the lock the name serves now (revalidate: a promotion changes it)",
    responses={200: {"description": "The rendered lock", "content": FILE_CONTENT}, **_ERRORS},
    response_class=Response,
)
async def name_file(
    request: Request, service: ServiceDep, names: NamesDep, name: str, file: FileName
) -> Response:
    allow_name(request, name)
    fmt = FILE_FORMATS[file]
    # What a name serves changes only with a change the database announces (`lockd.store.changes`).
    digest = service.cached_name_input(name)
    if digest is None:
        generation = service.name_input_generation()
        digest = (await in_read_thread(request, lambda: names.get(name))).input_digest
        service.remember_name_input(name, digest, generation)
    input_digest = digest
    found = service.cached_current_file(input_digest, fmt)
    if found is None:
        found = await in_read_thread(request, lambda: service.current_file(input_digest, fmt))
    current, record = found
    headers = {
        "Lock-Name": name,
        "Input-Digest": current.input_digest,
        "Lock-Digest": current.lock_digest,
        "Lock-Revision": str(current.n),
        "Content-Location": f"/v1/blobs/{current.lock_digest}/{file}",
        "Cache-Control": "no-cache",
    }
    return file_response(request, record, status=200, headers=headers)


@router.get(
    "/v1/names/{name:lockname}",
    response_model=NameOut,
    dependencies=[Depends(requires("read"))],
    summary="What a name points at: its input, the revision it serves, how that lock was made",
    responses=_ERRORS,
)
async def get_name(request: Request, names: NamesDep, name: str) -> NameOut:
    allow_name(request, name)

    def read() -> NameOut:
        view = names.get(name)
        return NameOut.of(view, names.provenance(view.revision.lock_digest))

    return await in_read_thread(request, read)


@router.delete(
    "/v1/names/{name:lockname}",
    status_code=204,
    dependencies=[Depends(requires("admin"))],
    summary="Delete a name and its history; its locks stay served by digest",
    responses=_ERRORS,
)
async def delete_name(request: Request, names: NamesDep, name: str) -> Response:
    await in_thread(request, lambda: names.delete(name))
    return Response(status_code=204)


# -- by input digest ---------------------------------------------------------------------------


@router.get(
    "/v1/locks/{input_digest}/status",
    response_model=StatusOut,
    dependencies=[Depends(requires("read"))],
    summary="The per-lock gate for an input digest",
    responses=_ERRORS,
)
async def digest_status(request: Request, names: NamesDep, input_digest: Digest) -> StatusOut:
    status = await in_read_thread(request, lambda: names.status(input_digest=input_digest))
    return StatusOut.of(status, base=public_base(request))


@router.get(
    "/v1/locks/{input_digest}/proposals",
    response_model=ProposalList,
    dependencies=[Depends(requires("read"))],
    summary="An input's proposals, newest first",
    responses=_ERRORS,
)
async def digest_proposals(request: Request, names: NamesDep, input_digest: Digest) -> ProposalList:
    found = await in_read_thread(request, lambda: names.proposals(input_digest))
    return ProposalList(items=[ProposalOut.of(p, base=public_base(request), name=None) for p in found])


@router.post(
    "/v1/locks/{input_digest}/proposals/{n}/promote",
    response_model=ProposalOut,
    dependencies=[Depends(requires("lock"))],
    summary="Promote a proposal of an input: its digest serves the proposal's lock from now on",
    responses=_ERRORS,
)
async def promote_by_digest(
    request: Request, names: NamesDep, input_digest: Digest, n: ProposalNumber
) -> ProposalOut:
    allow_name(request, None)
    who = actor(request)

    def work() -> ProposalOut:
        names.proposal(n, input_digest=input_digest)
        return ProposalOut.of(names.promote(n, actor=who), base=public_base(request), name=None)

    return await in_thread(request, work)


@router.post(
    "/v1/locks/{input_digest}/refresh",
    response_model=RefreshInfo,
    dependencies=[Depends(requires("lock"))],
    summary="Re-resolve a stored input against the index now; a changed lock becomes a proposal",
    responses=_ERRORS,
)
async def refresh_digest(request: Request, service: ServiceDep, input_digest: Digest) -> RefreshInfo:
    allow_name(request, None)
    who = actor(request)
    result = await resolve_admitted(request, input_digest, lambda: service.refresh(input_digest, actor=who))
    found = result.proposal
    return refresh_info(
        result, None if found is None else ProposalOut.of(found, base=public_base(request), name=None)
    )


def refresh_info(result: RefreshResult, proposal: ProposalOut | None) -> RefreshInfo:
    digest = result.input_digest
    return RefreshInfo(
        input_digest=digest,
        changed=result.changed,
        previous_revision=result.previous.n,
        revision=result.revision.n,
        lock_digest=result.revision.lock_digest,
        previous_lock_digest=result.previous.lock_digest,
        proposal=proposal,
        links=lock_links(digest, result.revision.lock_digest),
    )
