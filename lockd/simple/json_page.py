"""PEP 691 JSON project pages as `ProjectPage` values: PyPI's format, and the bulk of parse CPU.

A page may list at most `max_files` files (`ResponseTooLarge` past that, counted in the text
before decoding) and parsing checks the deadline as it goes (`lockd.deadline`). Each file goes
through the per-file rules of `lockd.simple.files`; the loop is written out here because it runs
for tens of thousands of entries per resolution.
"""

from __future__ import annotations

import json
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.deadline import within_deadline
from lockd.simple.files import (
    DistFile,
    ProjectPage,
    absolute_url,
    file_head,
    hex_digest,
    parse_upload_time,
    requires_python_of,
    too_many_files,
    yank_reason,
)

__all__ = ["JSON_CONTENT_TYPE", "parse_json_page"]

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"


def parse_json_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 691 project page. Relative URLs resolve against `page_url`."""
    if max_files is not None:
        # Every file has a "url" key: counted in the text, a page of too many tiny entries is
        # refused before json.loads turns each into a dict (~1 KiB apiece).
        keys = (body if isinstance(body, bytes) else body.encode()).count(b'"url"')
        if keys > max_files:
            raise too_many_files(page_url, keys, max_files)
    data: dict[str, Any] = json.loads(body)
    name = canonicalize_name(project)
    files: list[DistFile] = []
    foreign: set[Version] = set()
    entries = data.get("files", [])
    if max_files is not None and isinstance(entries, list) and len(entries) > max_files:
        raise too_many_files(page_url, len(entries), max_files)
    for entry in within_deadline(entries, f"parsing {page_url}"):
        if not isinstance(entry, dict):
            continue
        raw_url = entry.get("url")
        if not isinstance(raw_url, str):
            continue
        url: str | None = None
        filename = entry.get("filename")
        if not filename:
            url = absolute_url(page_url, raw_url)
            filename = url.rsplit("/", 1)[-1]
        elif not isinstance(filename, str):
            filename = str(filename)
        head = file_head(name, filename, foreign)
        if head is None:
            continue
        url = url or absolute_url(page_url, raw_url)
        hashes = entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        size = entry.get("size")
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        # json.loads makes every object a dict: the check on Mapping, an ABC, cost ~1 µs a file.
        metadata_hashes = metadata if isinstance(metadata, dict) else None
        has_metadata = metadata is True or metadata_hashes is not None
        # `dist_file`'s rules, spelled out: a keyword call per file was a tenth of the parse.
        files.append(
            DistFile(
                name,
                head[1],
                filename,
                url,
                head[0],
                head[2],
                hex_digest(sha256),
                size if isinstance(size, int) else None,
                requires_python_of(entry.get("requires-python")),
                yank_reason(entry.get("yanked")),
                parse_upload_time(entry.get("upload-time")),
                url + ".metadata" if has_metadata else None,
                hex_digest(metadata_hashes.get("sha256")) if metadata_hashes is not None else None,
                page_url,
            )
        )
    # Most pages have no foreign-only versions: hashing every file's version for nothing was a
    # tenth of a big page's parse.
    kept = frozenset(foreign - {f.version for f in files}) if foreign else frozenset()
    return ProjectPage(name, page_url, tuple(files), kept)
