"""PEP 691 JSON project pages as `ProjectPage` values: PyPI's format, and the bulk of parse CPU.

A page may list at most `max_files` files (`ResponseTooLarge` past that, counted in the text
before decoding) and parsing checks the deadline as it goes (`lockd.deadline`). Each file goes
through the per-file rules of `lockd.simple.files`, a page's file names in one loop
(`file_heads`) and everything else column by column in C (`kept_entries`, which the page
child's `lockd.simple.json_form` shares), because they run for tens of thousands of entries per
resolution.

Pages are decoded by msgspec into structs of the keys lockd reads, typed as PEP 691 writes
them: it skips every other key without building it, and on PyPI's pages it decodes in about
two thirds of `json.loads`' time, with attribute reads in the loop instead of dict lookups.
A page whose shape the types do not describe (an entry that is not an object, a size that is
not an integer, a hash that is not a string…), or that msgspec does not decode at all, is
decoded again by `json.loads` and read by the tolerant rules below it, entry by entry, so an odd
entry is still skipped, never the page.
Both paths give the same `ProjectPage` for every page (`tests/test_simple_reference.py`).
"""

from __future__ import annotations

import json
from itertools import compress, repeat
from operator import attrgetter
from typing import Any

import msgspec
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.deadline import within_deadline
from lockd.simple.dist_file import Details, DistFile, RawDetails
from lockd.simple.files import (
    FileHead,
    ProjectPage,
    absolute_url,
    check_urls,
    details_from_raw,
    file_head,
    file_heads,
    foreign_only,
    hex_digest,
    parse_upload_time,
    requires_python_of,
    too_many_files,
    yank_reason,
)
from lockd.simple.media_types import JSON_CONTENT_TYPE

__all__ = [
    "JSON_CONTENT_TYPE",
    "JsonEntry",
    "JsonHashes",
    "decode_entries",
    "kept_entries",
    "parse_json_page",
]


class JsonHashes(msgspec.Struct, gc=False):
    sha256: str | None = None


class JsonEntry(msgspec.Struct, gc=False):
    url: str
    filename: str | None = None
    hashes: JsonHashes | None = None
    size: int | None = None
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    yanked: bool | str | None = None
    upload_time: str | None = msgspec.field(default=None, name="upload-time")
    # UNSET keeps "absent" apart from null (`_metadata`).
    core_metadata: bool | JsonHashes | msgspec.UnsetType | None = msgspec.field(
        default=msgspec.UNSET, name="core-metadata"
    )
    dist_info_metadata: bool | JsonHashes | msgspec.UnsetType | None = msgspec.field(
        default=msgspec.UNSET, name="dist-info-metadata"
    )

    def details(self, page_url: str) -> Details:
        """`DistFile`'s details, read from this entry when the file is first used."""
        return details_from_raw(self.raw(), page_url)

    def _metadata(self) -> bool | JsonHashes | None:
        # PEP 714: dist-info-metadata only where core-metadata is absent (not where it is null).
        if self.core_metadata is msgspec.UNSET:
            return None if self.dist_info_metadata is msgspec.UNSET else self.dist_info_metadata
        return self.core_metadata

    def raw(self) -> RawDetails:
        metadata = self._metadata()
        hashes = metadata if isinstance(metadata, JsonHashes) else None
        return (
            self.url,
            None if self.hashes is None else self.hashes.sha256,
            self.size,
            self.upload_time,
            metadata is True or hashes is not None,
            None if hashes is None else hashes.sha256,
        )

    def text_length(self) -> int:
        metadata = self._metadata()
        listed = metadata is True or isinstance(metadata, JsonHashes)
        return len(self.url) * (2 if listed else 1)


class _Page(msgspec.Struct):
    files: list[JsonEntry] = msgspec.field(default_factory=list)


_DECODER = msgspec.json.Decoder(_Page)


def parse_json_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 691 project page. Relative URLs resolve against `page_url`."""
    name = canonicalize_name(project)
    entries = decode_entries(body, page_url, max_files)
    if entries is None:
        return _parse_tolerantly(body, page_url, name, max_files)
    foreign: set[Version] = set()
    kept, filenames, heads = kept_entries(entries, page_url, name, foreign)
    kinds, versions, tag_sets = tuple(zip(*heads, strict=True)) or ((), (), ())
    # What ranking needs now; the URL, hashes, size, upload time and metadata when first read
    # (`DistFile.listed`, called in C).
    files = list(
        map(
            DistFile,
            repeat(name),
            versions,
            filenames,
            kinds,
            tag_sets,
            map(requires_python_of, map(_REQUIRES_PYTHON, kept)),
            map(yank_reason, map(_YANKED, kept)),
            repeat(page_url),
            kept,
        )
    )
    return _page(name, page_url, files, foreign)


def decode_entries(body: bytes | str, page_url: str, max_files: int | None) -> list[JsonEntry] | None:
    """The page's entries as msgspec decodes them; None for a page to read by the tolerant rules."""
    if max_files is not None:
        # A page of too many tiny entries is refused before anything is decoded. An entry is an
        # object with a "url" key, 10 bytes at least (`{"url":""}`), so a body shorter than 10
        # bytes a file cannot list too many (most pages: not counted). In a longer one, each
        # entry's key is `"url"` spelled out, or escaped (`"\u0075rl"`) with a backslash of its
        # own: the two counts bound the entries. `"url"` alone let a page of escaped keys be
        # decoded whole before its length was judged.
        text = body if isinstance(body, bytes) else body.encode()
        if len(text) // 10 > max_files:
            keys = text.count(b'"url"')
            if keys + text.count(b"\\") > max_files:
                raise too_many_files(page_url, keys if keys > max_files else None, max_files)
    try:
        page = _DECODER.decode(body)
    except msgspec.MsgspecError:
        # Also what msgspec refuses and json.loads takes (NaN, UTF-16 bodies): json.loads
        # decides, so a page that parsed before still parses, and one that failed still fails.
        return None
    if max_files is not None and len(page.files) > max_files:
        raise too_many_files(page_url, len(page.files), max_files)
    return page.files


def kept_entries(
    entries: list[JsonEntry], page_url: str, name: NormalizedName, foreign: set[Version]
) -> tuple[list[JsonEntry], list[str], list[FileHead]]:
    """The entries of files pip would install and some target could, with their names and heads.

    The versions of wheels no lockable target installs are added to `foreign` (`file_heads`).
    Raises ValueError for a kept file whose URL urljoin refuses: the page fails now, not at the
    file's first use.
    """
    filenames: list[str] = list(map(_FILENAME, entries))
    if None in filenames or "" in filenames:  # scanned in C; pip names such a file by its URL
        filenames = [f or absolute_url(page_url, e.url).rsplit("/", 1)[-1] for f, e in zip(filenames, entries, strict=True)]  # fmt: skip
    heads = file_heads(name, filenames, foreign, f"parsing {page_url}")
    kept = list(compress(entries, heads))  # a head is a non-empty tuple, a file not kept None
    check_urls(page_url, list(map(_URL, kept)))
    return kept, list(compress(filenames, heads)), list(filter(None, heads))


_FILENAME = attrgetter("filename")
_REQUIRES_PYTHON = attrgetter("requires_python")
_YANKED = attrgetter("yanked")
_URL = attrgetter("url")


def _parse_tolerantly(
    body: bytes | str, page_url: str, name: NormalizedName, max_files: int | None
) -> ProjectPage:
    """The page entry by entry from `json.loads`' dicts: what does not fit is skipped, as pip does."""
    data: dict[str, Any] = json.loads(body)
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
        files.append(
            DistFile.of(
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
    return _page(name, page_url, files, foreign)


def _page(name: NormalizedName, page_url: str, files: list[DistFile], foreign: set[Version]) -> ProjectPage:
    return ProjectPage(name, page_url, tuple(files), foreign_only(foreign, (f.version for f in files)))
