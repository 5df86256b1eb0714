"""Serving stored lock files: file names ↔ formats, content negotiation, ETags and 304s.

A file's ETag is its sha256 (strong: the bytes never change for a lock digest).
`If-None-Match` uses the weak comparison RFC 9110 prescribes for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from lockd.errors import InvalidRequest
from lockd.render import DEFAULT_FORMAT, FORMATS, FORMATS_BY_FILE_NAME
from lockd.stored import LockFile

__all__ = [
    "FILE_CONTENT",
    "FILE_FORMATS",
    "file_links",
    "file_response",
    "format_from_accept",
    "not_modified",
]

# Served file name → render format.
FILE_FORMATS: Mapping[str, str] = {name: f.name for name, f in FORMATS_BY_FILE_NAME.items()}


class _LockFileConvertor(Convertor[str]):
    """Matches only the served file names, so `/v1/locks/{d}/refresh` is never a file request.

    Without it, `GET …/refresh` matched the file route and answered 422 instead of 405.
    """

    regex = "|".join(re.escape(name) for name in FILE_FORMATS)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Routes compile their path patterns when they are declared, so the convertor is registered
# here, before any router module that uses `{file:lockfile}` is imported.
register_url_convertor("lockfile", _LockFileConvertor())
_ACCEPTED_MEDIA = {media: f.name for f in FORMATS.values() for media in f.accepted_media_types}
# The media types a file route answers with, for its OpenAPI `responses`.
FILE_CONTENT: dict[str, dict[str, object]] = {f.accepted_media_types[0]: {} for f in FORMATS.values()}


def file_links(lock_digest: str) -> dict[str, str]:
    return {name: f"/v1/blobs/{lock_digest}/{name}" for name in FILE_FORMATS}


def format_from_accept(explicit: str | None, accept: str | None) -> str:
    """`format=` wins; else the first Accept type lockd renders, by q-value; else requirements.txt."""
    if explicit is not None:
        fmt = FILE_FORMATS.get(explicit, explicit)
        if fmt not in FORMATS:
            raise InvalidRequest(
                f"unknown lock format {explicit!r}",
                hint="use one of: " + ", ".join(FORMATS),
                context={"field": "format", "value": explicit},
            )
        return fmt
    if not accept:
        return DEFAULT_FORMAT
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.lower() in _ACCEPTED_MEDIA and quality > 0:
            ranked.append((-quality, position, _ACCEPTED_MEDIA[media.lower()]))
    return min(ranked)[2] if ranked else DEFAULT_FORMAT


def _etag(record: LockFile) -> str:
    return f'"{record.sha256}"'


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    offered = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in offered


def file_response(request: Request, record: LockFile, *, status: int, headers: Mapping[str, str]) -> Response:
    etag = _etag(record)
    all_headers = {
        **headers,
        "ETag": etag,
        "Content-Disposition": f'inline; filename="{FORMATS[record.format].file_name}"',
        "Digest-Sha256": record.sha256,
    }
    if request.method in ("GET", "HEAD") and not_modified(request, etag):
        return Response(status_code=304, headers=all_headers)
    return Response(record.content, status_code=status, media_type=record.media_type, headers=all_headers)
