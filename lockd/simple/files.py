"""The per-file rules of the Simple Repository API, shared by the JSON and HTML page parsers.

`DistFile` / `ProjectPage` values (`dist_file`, `project_page`), file-name parsing with
`packaging.utils` (memoised per component, so everything downstream works with shared `Version`
and `Tag` values), the lockable-target filter, URL absolutisation and the checks on hashes,
yanks and requires-python.
A file whose name, version or requires-python does not parse within bounds (`lockd.index_text`)
is skipped, or keeps no requires-python, as pip does; it never fails the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from itertools import compress
from operator import not_
from typing import Literal
from urllib.parse import urldefrag, urljoin

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from lockd.deadline import check_deadline
from lockd.errors import ResponseTooLarge
from lockd.index_text import parse_specifier
from lockd.simple.dist_file import Details, DistFile, RawDetails
from lockd.simple.project_page import ProjectPage
from lockd.target import lockable_anywhere

__all__ = [
    "DistFile",
    "FileHead",
    "ProjectPage",
    "absolute_url",
    "check_urls",
    "details_from_raw",
    "dist_file",
    "file_head",
    "file_heads",
    "files_text_length",
    "foreign_only",
    "hex_digest",
    "is_plain_url",
    "parse_upload_time",
    "requires_python_of",
    "too_many_files",
    "yank_reason",
]

_HEX = "0123456789abcdef"


def foreign_only(foreign: set[Version], kept: Iterable[Version]) -> frozenset[Version]:
    """The versions of `foreign` (wheels no target installs) that no kept file has."""
    # Most pages have none: hashing every kept file's version for nothing was a tenth of a big
    # page's parse.
    return frozenset(foreign.difference(kept)) if foreign else frozenset()


def files_text_length(page: ProjectPage) -> int:
    """`DistFile.text_length` summed over the page's files, worked out once and kept with the page.

    A page read back from a form (`lockd.simple.page_form`) comes with it, counted in C from the
    form's columns: file by file, it was 3-4% of a cold 200-pin resolution's server CPU.
    """
    known = page.derived.get(files_text_length)
    if isinstance(known, int):
        return known
    total = sum(file.text_length() for file in page.files)
    page.derived[files_text_length] = total
    return total


def parse_upload_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def requires_python_of(text: object) -> SpecifierSet | None:
    if not isinstance(text, str) or not text.strip():
        return None
    return _parsed_requires_python(text)


# A project lists the same few requires-python texts, versions and tag sets on thousands of
# files (grpcio, aiohttp); parsing each once per process made page parsing several times faster.
# Files sharing the parsed value also lets callers memoise per value by identity.
@lru_cache(maxsize=4096)
def _parsed_requires_python(text: str) -> SpecifierSet | None:
    try:
        return parse_specifier(text)
    except InvalidSpecifier:
        # pip ignores a requires-python it cannot parse and keeps the file (`>=3.6.*` on
        # datatest 0.11.1, symengine 0.7.x): the file counts as having none.
        return None


# parse_wheel_filename's and parse_sdist_filename's checks are per component (name, version,
# build tag, tag set), so each component is validated by that same function once, on a filename
# built around it. The version check is `Version(text)` in both: one cache serves wheels and
# sdists, so a release's files share one `Version`, and a page's thousands of versions are each
# parsed once instead of once per kind with a throwaway tag set (half a cold parse of botocore).
@lru_cache(maxsize=8192)
def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a number past Python's 4,300-digit limit
        return None


@lru_cache(maxsize=1024)
def _wheel_name(name_part: str) -> NormalizedName | None:
    try:
        return parse_wheel_filename(f"{name_part}-0-py3-none-any.whl")[0]
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _sdist_name(name_part: str) -> NormalizedName | None:
    try:
        return parse_sdist_filename(f"{name_part}-0.tar.gz")[0]
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _wheel_build_ok(build_part: str) -> bool:
    try:
        parse_wheel_filename(f"x-0-{build_part}-py3-none-any.whl")
    except ValueError:
        return False
    return True


# With whether a target could install them: the same tag set recurs on every version's wheels.
@lru_cache(maxsize=4096)
def _wheel_tags(tag_part: str) -> tuple[frozenset[Tag], bool] | None:
    try:
        tags = parse_wheel_filename(f"x-0-{tag_part}.whl")[3]
    except ValueError:
        return None
    return tags, lockable_anywhere(tags)


def _parse_sdist_name(filename: str) -> tuple[NormalizedName, Version] | None:
    """`packaging.utils.parse_sdist_filename`, memoised per component; None where it raises."""
    suffix = ".tar.gz" if filename.endswith(".tar.gz") else ".zip"
    name_part, sep, version_part = filename[: -len(suffix)].rpartition("-")
    if not sep:
        return None
    name = _sdist_name(name_part)
    version = _version(version_part)
    if name is None or version is None:
        return None
    return name, version


def absolute_url(page_url: str, url: str) -> str:
    """`urldefrag(urljoin(page_url, url))[0]`, without the cost for plain absolute URLs.

    urljoin returns an absolute http(s) URL re-assembled from its parts, which is the same
    string unless it has a query, params, fragment, whitespace or control characters.
    """
    if _PLAIN_URL.fullmatch(url):
        return url
    return urldefrag(urljoin(page_url, url))[0]


def check_urls(page_url: str, urls: list[str]) -> None:
    """ValueError for the first of `urls` that urljoin refuses against `page_url`.

    urlsplit refuses a URL only for its brackets (an IPv6 host) or a host outside ASCII, so a
    page whose URLs have neither is checked at once, in C: PyPI's 95,436 kept URLs of pypi-200
    took 65 ms of the page child one by one (`tests/test_simple.py` holds the rule to urljoin
    on generated URLs).
    """
    joined = "".join(urls)
    if joined.isascii() and "[" not in joined and "]" not in joined:
        return
    for url in compress(urls, map(not_, map(_PLAIN_URL.fullmatch, urls))):  # plain ones: in C
        absolute_url(page_url, url)


def is_plain_url(url: str) -> bool:
    """Whether `absolute_url` gives `url` itself, whatever the page: it can then never fail."""
    return _PLAIN_URL.fullmatch(url) is not None


# http(s), a host, printable ASCII without whitespace, query, params, fragment, brackets or backslash.
# The classes list what is allowed (! " $-: <-> @-Z ^-~, and no / first): written as "anything but"
# up to U+10FFFF, the same pattern took ~9 ms to compile, at every start.
_PLAIN_URL = re.compile(
    r"https?://[\x21\x22\x24-\x2e\x30-\x3a\x3c-\x3e\x40-\x5a\x5e-\x7e]"
    r"[\x21\x22\x24-\x3a\x3c-\x3e\x40-\x5a\x5e-\x7e]*"
)


FileHead = tuple[Literal["wheel", "sdist"], Version, frozenset[Tag]]


def file_head(project: NormalizedName, filename: str, foreign: set[Version]) -> FileHead | None:
    """Kind, version and tags of a file of `project` that pip would install and some target could.

    None for anything else. The version of a wheel of `project` that installs on no lockable
    target is added to `foreign`.
    """
    return file_heads(project, [filename], foreign, "reading a file name")[0]


def file_heads(
    project: NormalizedName, filenames: list[str], foreign: set[Version], doing: str
) -> list[FileHead | None]:
    """`file_head` of each of `filenames`, checking the deadline (`doing`) as it goes.

    This runs for every file of every page, before anything else about the file is read, and
    most files of a big page stop here: one loop over a page's names, with
    `parse_wheel_filename`'s and `parse_sdist_filename`'s checks memoised per component (above),
    against two calls per file (pypi-200's 167,509 listed files: 0.34 -> 0.28 s).
    """
    heads: list[FileHead | None] = []
    add = heads.append
    wheel_name, version_of, wheel_tags, build_ok = _wheel_name, _version, _wheel_tags, _wheel_build_ok
    for start in range(0, len(filenames), _DEADLINE_EVERY):
        check_deadline(doing)
        for filename in filenames[start : start + _DEADLINE_EVERY]:
            if filename.endswith(".whl"):
                # parse_wheel_filename: name-version(-build)?-tags.whl, with 4 or 5 dashes.
                stem = filename[:-4]
                dashes = stem.count("-")
                if dashes == 4:
                    name_part, version_part, tag_part = stem.split("-", 2)
                elif dashes == 5:
                    name_part, version_part, build_part, tag_part = stem.split("-", 3)
                    if not build_ok(build_part):
                        add(None)
                        continue
                else:
                    add(None)
                    continue
                version = version_of(version_part)
                tags = wheel_tags(tag_part)
                if version is None or tags is None or wheel_name(name_part) != project:
                    add(None)
                elif tags[1]:
                    add(("wheel", version, tags[0]))
                else:
                    foreign.add(version)
                    add(None)
            elif filename.endswith((".tar.gz", ".zip")):
                sdist = _parse_sdist_name(filename)
                add(("sdist", sdist[1], _NO_TAGS) if sdist is not None and sdist[0] == project else None)
            else:
                add(None)  # .egg, .exe, .msi: nothing pip would install
    return heads


_DEADLINE_EVERY = 1024
_NO_TAGS: frozenset[Tag] = frozenset()


def dist_file(
    head: FileHead,
    project: NormalizedName,
    filename: str,
    url: str,
    *,
    sha256: str | None,
    size: int | None,
    requires_python: object,
    yanked: str | None,
    upload_time: object,
    metadata: object,
    index_url: str,
) -> DistFile:
    kind, version, tags = head
    metadata_url: str | None = None
    metadata_sha256: str | None = None
    if metadata is True or isinstance(metadata, Mapping):
        metadata_url = url + ".metadata"
        if isinstance(metadata, Mapping):
            metadata_sha256 = hex_digest(metadata.get("sha256"))
    return DistFile.of(
        name=project,
        version=version,
        filename=filename,
        url=url,
        kind=kind,
        tags=tags,
        sha256=hex_digest(sha256),
        size=size,
        requires_python=requires_python_of(requires_python),
        yanked=yanked,
        upload_time=parse_upload_time(upload_time),
        metadata_url=metadata_url,
        metadata_sha256=metadata_sha256,
        index_url=index_url,
    )


def details_from_raw(raw: RawDetails, page_url: str) -> Details:
    """A file's details from what its index wrote (`RawDetails`), by the rules above."""
    raw_url, sha256, size, upload_time, metadata, metadata_sha256 = raw
    url = absolute_url(page_url, raw_url)
    return (
        url,
        hex_digest(sha256),
        size,
        parse_upload_time(upload_time),
        url + ".metadata" if metadata is True else metadata or None,
        hex_digest(metadata_sha256),
    )


def hex_digest(value: object) -> str | None:
    """A sha256 as 64 lowercase hex digits; anything else an index calls a sha256 counts as none."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    # `[0-9a-f]{64}` in full, without a regex call per file.
    return value if len(value) == 64 and not value.strip(_HEX) else None


def yank_reason(value: object) -> str | None:
    if value is True:
        return ""
    if isinstance(value, str):
        return value
    return None


def too_many_files(page_url: str, count: int | None, max_files: int) -> ResponseTooLarge:
    """`count`: the files the page lists, or None where only an upper bound on them is known."""
    listed = f"{count:,} files" if count is not None else "more files"
    return ResponseTooLarge(
        f"{page_url} lists {listed}, more than lockd reads ({max_files:,})",
        hint="a page this large is an attack or a mistake; if it is real, raise LOCKD_MAX_PAGE_FILES",
        context={"url": page_url, "files": count, "limit": max_files},
    )
