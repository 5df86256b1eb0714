"""The locks resource's reads: listings, an input's current revision, its revisions and files.

Locking itself (`POST /lock`, `POST /v1/locks`) is `lockd.http.lock_writes`. Files of the
current revision may change on refresh or promotion, so they are revalidated (`no-cache` +
ETag); the immutable copies live under `/v1/blobs/{lock_digest}/`. A file of the current
revision is answered on the event loop when this process has the revision and the file in
memory (`Service.cached_current_file`, kept fresh by `lockd.store.changes`). A refresh
proposes; what an input serves changes when a proposal is promoted (`lockd.http.names`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from packaging.utils import canonicalize_name

from lockd.accelerator import parse_variant
from lockd.http.deps import ServiceDep, in_read_thread, requires
from lockd.http.files import FILE_CONTENT, FILE_FORMATS, file_links, file_response
from lockd.http.lock_targets import lock_links
from lockd.http.models import (
    FileName,
    LockInfo,
    LockList,
    LockListItem,
    RevisionInfo,
    RevisionList,
)
from lockd.http.problems import ERROR_RESPONSES as _ERRORS
from lockd.limits import CUDA_CHARS, PLATFORM_CHARS, PYTHON_CHARS
from lockd.lock import LockWarning
from lockd.service import Service
from lockd.stored import Revision, StoredInput
from lockd.target import parse_interpreter, platform_named, python_text

__all__ = ["Digest", "lock_info", "lock_links", "router"]

router = APIRouter(tags=["locks"])

Digest = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256, 64 lowercase hex digits")]


def _revision_info(record: Revision) -> RevisionInfo:
    return RevisionInfo(
        input_digest=record.input_digest,
        revision=record.n,
        lock_digest=record.lock_digest,
        created_at=record.created_at,
        reason=record.reason,
        files=file_links(record.lock_digest),
    )


def lock_info(
    stored: StoredInput, record: Revision, created: bool | None, warnings: tuple[LockWarning, ...]
) -> LockInfo:
    target = dict(stored.target) or {
        "platform": stored.platform,
        "python": stored.python,
        "cuda": stored.cuda,
    }
    return LockInfo(
        input_digest=record.input_digest,
        lock_digest=record.lock_digest,
        revision=record.n,
        created=created,
        created_at=record.created_at,
        target=target,
        requirements=list(stored.requirements),
        constraints=list(stored.constraints),
        warnings=[w.to_json() for w in warnings],
        links=lock_links(record.input_digest, record.lock_digest),
    )


@router.get(
    "/v1/locks",
    response_model=LockList,
    dependencies=[Depends(requires("read"))],
    summary="Stored locks (current revisions), filtered and paginated by input digest",
    responses=_ERRORS,
)
async def list_locks(
    *,
    request: Request,
    service: ServiceDep,
    platform: Annotated[str | None, Query(max_length=PLATFORM_CHARS)] = None,
    python: Annotated[str | None, Query(max_length=PYTHON_CHARS)] = None,
    cuda: Annotated[
        str | None, Query(max_length=CUDA_CHARS, description="a variant, or `none` for locks without one")
    ] = None,
    package: Annotated[str | None, Query(description="only locks that pin this project")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{64}$", description="`next` of the previous page")
    ] = None,
) -> LockList:
    python_filter = None if python is None else python_text(*parse_interpreter(python))
    # uv's and conda's names select the platform they stand for (`linux-64` is linux_x86_64)
    named = None if platform is None else platform_named(platform)
    platform_filter = platform if named is None else named[0].name
    # Spelled as on intake (`12.4` is cu124); `none` (or empty) means locks without a variant.
    variant = None if cuda is None else parse_variant(cuda)
    cuda_filter = None if cuda is None else ("" if variant is None else variant.name)
    package_filter = None if package is None else canonicalize_name(package)
    rows = await in_read_thread(
        request,
        lambda: service.list_locks(
            limit=limit,
            after=cursor,
            platform=platform_filter,
            python=python_filter,
            cuda=cuda_filter,
            package=package_filter,
        ),
    )
    items = [
        LockListItem(
            input_digest=row.input_digest,
            lock_digest=row.lock_digest,
            revision=row.revision,
            target={"platform": row.platform, "python": row.python, "cuda": row.cuda},
            package_count=row.package_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
            links=lock_links(row.input_digest, row.lock_digest),
        )
        for row in rows
    ]
    next_page = None
    if len(rows) == limit:
        query = request.query_params.multi_items()
        kept = [(k, v) for k, v in query if k != "cursor"] + [("cursor", rows[-1].input_digest)]
        next_page = "/v1/locks?" + urlencode(kept)
    return LockList(items=items, next=next_page)


@router.get(
    "/v1/locks/{input_digest}",
    response_model=LockInfo,
    dependencies=[Depends(requires("read"))],
    summary="The current revision of a stored input",
    responses=_ERRORS,
)
async def get_lock(request: Request, service: ServiceDep, input_digest: Digest) -> LockInfo:
    def read() -> tuple[StoredInput, Revision, tuple[LockWarning, ...]]:
        record = service.current(input_digest)
        return service.stored_input(input_digest), record, service.lock_warnings(record.lock_digest)

    found = _cached_lock(service, input_digest)
    stored, record, warnings = found if found is not None else await in_read_thread(request, read)
    return lock_info(stored, record, None, warnings)


def _cached_lock(
    service: Service, input_digest: str
) -> tuple[StoredInput, Revision, tuple[LockWarning, ...]] | None:
    stored = service.cached_stored_input(input_digest)
    current = service.cached_current_file(input_digest, "json")
    if stored is None or current is None:
        return None
    warnings = service.cached_warnings(current[0].lock_digest)
    return None if warnings is None else (stored, current[0], warnings)


@router.get(
    "/v1/locks/{input_digest}/revisions",
    response_model=RevisionList,
    dependencies=[Depends(requires("read"))],
    summary="Every revision of a stored input, oldest first",
    responses=_ERRORS,
)
async def list_revisions(request: Request, service: ServiceDep, input_digest: Digest) -> RevisionList:
    records = await in_read_thread(request, lambda: service.revisions(input_digest))
    return RevisionList(input_digest=input_digest, revisions=[_revision_info(r) for r in records])


@router.get(
    "/v1/locks/{input_digest}/revisions/{n}",
    response_model=RevisionInfo,
    dependencies=[Depends(requires("read"))],
    summary="One revision of a stored input",
    responses=_ERRORS,
)
async def get_revision(
    request: Request, service: ServiceDep, input_digest: Digest, n: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> RevisionInfo:
    record = await in_read_thread(request, lambda: service.revision(input_digest, n))
    return _revision_info(record)


@router.get(
    "/v1/locks/{input_digest}/{file:lockfile}",
    dependencies=[Depends(requires("read"))],
    summary="A file of the current revision (revalidate: it changes when a refresh changes the lock)",
    responses={
        200: {"description": "The rendered lock", "content": FILE_CONTENT},
        304: {"description": "Not modified"},
        **_ERRORS,
    },
    response_class=Response,
)
async def get_lock_file(
    request: Request, service: ServiceDep, input_digest: Digest, file: FileName
) -> Response:
    fmt = FILE_FORMATS[file]
    found = service.cached_current_file(input_digest, fmt)
    if found is None:
        found = await in_read_thread(request, lambda: service.current_file(input_digest, fmt))
    current, record = found
    headers = {
        "Lock-Digest": current.lock_digest,
        "Lock-Revision": str(current.n),
        "Content-Location": f"/v1/blobs/{current.lock_digest}/{file}",
        "Cache-Control": "no-cache",
    }
    return file_response(request, record, status=200, headers=headers)
