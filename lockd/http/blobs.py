"""Immutable lock files by lock digest: cacheable forever, pinned by checksum in Dockerfiles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from lockd.http.deps import ServiceDep, in_read_thread, requires
from lockd.http.files import FILE_CONTENT, FILE_FORMATS, file_response
from lockd.http.models import FileName
from lockd.http.problems import ERROR_RESPONSES as _ERRORS

__all__ = ["router"]

router = APIRouter(tags=["blobs"])

_IMMUTABLE = "public, max-age=31536000, immutable"


@router.get(
    "/v1/blobs/{lock_digest}/{file:lockfile}",
    dependencies=[Depends(requires("read"))],
    summary="A rendered file of a lock, by lock digest: immutable",
    responses={
        200: {"description": "The file, byte-identical forever", "content": FILE_CONTENT},
        304: {"description": "Not modified"},
        **_ERRORS,
    },
    response_class=Response,
)
async def get_blob(
    request: Request,
    service: ServiceDep,
    lock_digest: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    file: FileName,
) -> Response:
    fmt = FILE_FORMATS[file]
    # Blobs never change, so a file this process has served is answered without a thread.
    record = service.cached_file(lock_digest, fmt)
    if record is None:
        record = await in_read_thread(request, lambda: service.lock_file(lock_digest, fmt))
    headers = {"Lock-Digest": lock_digest, "Cache-Control": _IMMUTABLE}
    return file_response(request, record, status=200, headers=headers)
