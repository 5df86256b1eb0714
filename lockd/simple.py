"""The Simple Repository API as data. No I/O.

Parses project pages in PEP 691 JSON and PEP 503 HTML into `ProjectPage` / `DistFile`
values, including PEP 592 yanks, PEP 658/714 core-metadata availability, PEP 700
`upload-time` and `versions`, and `#sha256=` URL fragments. File names are parsed with
`packaging.utils` so that everything downstream works with `Version` and `Tag` values.

A page is index-supplied text: it may list at most `max_files` files (`ResponseTooLarge`
past that), parsing checks the deadline as it goes (`lockd.deadline`), and a file whose name,
version or requires-python does not parse within bounds (`lockd.index_text`) is skipped, or
keeps no requires-python, as pip does; it never fails the page. Past 400 lines this is still one
job: two formats of one API, sharing every per-file rule (`_file_head`, `_dist_file`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import unquote, urldefrag, urljoin

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from lockd.deadline import check_deadline, within_deadline
from lockd.errors import ResponseTooLarge
from lockd.index_text import parse_specifier
from lockd.target import lockable_anywhere

__all__ = [
    "ACCEPT_HEADER",
    "JSON_CONTENT_TYPE",
    "DistFile",
    "ProjectPage",
    "parse_html_page",
    "parse_json_page",
    "parse_upload_time",
]

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
# HTMLParser takes about 10 MB/s: fed this much at a time, it stops within ~30 ms of the deadline.
_HTML_FEED = 256 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
# JSON preferred, HTML accepted: PyPI answers JSON, the PyTorch index only HTML.
ACCEPT_HEADER = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True, slots=True)
class DistFile:
    """One installable file of a project as an index lists it."""

    name: NormalizedName
    version: Version
    filename: str
    url: str
    kind: Literal["wheel", "sdist"]
    tags: frozenset[Tag]
    sha256: str | None
    size: int | None
    requires_python: SpecifierSet | None
    yanked: str | None  # None when not yanked; the reason (possibly "") when yanked
    upload_time: datetime | None
    metadata_url: str | None  # PEP 658/714: where `<file>.metadata` lives, if advertised
    metadata_sha256: str | None
    index_url: str = field(default="", compare=False)

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project's files that some lockable target can install (wheels), or build from (sdists).

    Wheels that install on no target in `lockd.target`'s table are not kept as files: their
    versions are listed in `foreign_versions`, so an error can still say why they do not fit.
    """

    name: NormalizedName
    index_url: str
    files: tuple[DistFile, ...]
    foreign_versions: frozenset[Version] = frozenset()
    # What is derived from the page for one target (`lockd.resolver.finder.Finder.of`), kept
    # with the page so it lives exactly as long as the page's cache entry. Not part of the value.
    derived: dict[Hashable, object] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False
    )

    @property
    def versions(self) -> frozenset[Version]:
        return frozenset(f.version for f in self.files) | self.foreign_versions


def parse_upload_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _requires_python(text: object) -> SpecifierSet | None:
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


# parse_wheel_filename's checks are per component (name, version, build tag, tag set), so each
# component is validated by that same function once, on a filename built around it.
@lru_cache(maxsize=8192)
def _wheel_head(name_part: str, version_part: str) -> tuple[NormalizedName, Version] | None:
    try:
        name, version, _build, _tags = parse_wheel_filename(f"{name_part}-{version_part}-py3-none-any.whl")
    except ValueError:  # InvalidWheelFilename, or a number past Python's 4,300-digit limit
        return None
    return name, version


@lru_cache(maxsize=1024)
def _wheel_build_ok(build_part: str) -> bool:
    try:
        parse_wheel_filename(f"x-0-{build_part}-py3-none-any.whl")
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _wheel_tags(tag_part: str) -> frozenset[Tag] | None:
    try:
        return parse_wheel_filename(f"x-0-{tag_part}.whl")[3]
    except ValueError:
        return None


def _parse_wheel_name(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag]] | None:
    """`packaging.utils.parse_wheel_filename`, memoised per component; None where it raises."""
    stem = filename[:-4]
    dashes = stem.count("-")
    if dashes not in (4, 5):
        return None
    parts = stem.split("-", dashes - 2)
    head = _wheel_head(parts[0], parts[1])
    if head is None or (dashes == 5 and not _wheel_build_ok(parts[2])):
        return None
    tags = _wheel_tags(parts[-1])
    if tags is None:
        return None
    return head[0], head[1], tags


@lru_cache(maxsize=8192)
def _sdist_head(name_part: str, version_part: str, suffix: str) -> tuple[NormalizedName, Version] | None:
    try:
        return parse_sdist_filename(f"{name_part}-{version_part}{suffix}")
    except ValueError:  # InvalidSdistFilename, or a number past Python's 4,300-digit limit
        return None


def _parse_sdist_name(filename: str) -> tuple[NormalizedName, Version] | None:
    """`packaging.utils.parse_sdist_filename`, memoised per (name, version); None where it raises."""
    suffix = ".tar.gz" if filename.endswith(".tar.gz") else ".zip"
    name_part, sep, version_part = filename[: -len(suffix)].rpartition("-")
    if not sep:
        return None
    return _sdist_head(name_part, version_part, suffix)


def _absolute_url(page_url: str, url: str) -> str:
    """`urldefrag(urljoin(page_url, url))[0]`, without the cost for plain absolute URLs.

    urljoin returns an absolute http(s) URL re-assembled from its parts, which is the same
    string unless it has a query, params, fragment, whitespace or control characters.
    """
    if _PLAIN_URL.fullmatch(url):
        return url
    return urldefrag(urljoin(page_url, url))[0]


# http(s), a host, printable ASCII without whitespace, query, params, fragment, brackets or backslash.
_PLAIN_URL = re.compile(
    r"https?://[^\x00-\x20\x7f-\U0010ffff?;#\[\]\\/][^\x00-\x20\x7f-\U0010ffff?;#\[\]\\]*"
)


_FileHead = tuple[Literal["wheel", "sdist"], Version, frozenset[Tag]]


def _file_head(project: NormalizedName, filename: str, foreign: set[Version]) -> _FileHead | None:
    """Kind, version and tags of a file of `project` that pip would install and some target could.

    None for anything else. The version of a wheel of `project` that installs on no lockable
    target is added to `foreign`. This runs for every file of a page, before anything else
    about the file is read: most files of a big page stop here.
    """
    if filename.endswith(".whl"):
        wheel = _parse_wheel_name(filename)
        if wheel is None or wheel[0] != project:
            return None
        if not lockable_anywhere(wheel[2]):
            foreign.add(wheel[1])
            return None
        return "wheel", wheel[1], wheel[2]
    if filename.endswith((".tar.gz", ".zip")):
        sdist = _parse_sdist_name(filename)
        if sdist is None or sdist[0] != project:
            return None
        return "sdist", sdist[1], frozenset()
    return None  # .egg, .exe, .msi: nothing pip would install


def _dist_file(
    head: _FileHead,
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
            metadata_sha256 = _hex_digest(metadata.get("sha256"))
    return DistFile(
        name=project,
        version=version,
        filename=filename,
        url=url,
        kind=kind,
        tags=tags,
        sha256=_hex_digest(sha256),
        size=size,
        requires_python=_requires_python(requires_python),
        yanked=yanked,
        upload_time=parse_upload_time(upload_time),
        metadata_url=metadata_url,
        metadata_sha256=metadata_sha256,
        index_url=index_url,
    )


def _hex_digest(value: object) -> str | None:
    """A sha256 as 64 lowercase hex digits; anything else an index calls a sha256 counts as none."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value if _SHA256.fullmatch(value) else None


def _yank_reason(value: object) -> str | None:
    if value is True:
        return ""
    if isinstance(value, str):
        return value
    return None


def _too_many_files(page_url: str, count: int, max_files: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{page_url} lists {count:,} files, more than lockd reads ({max_files:,})",
        hint="a page this large is an attack or a mistake; if it is real, raise LOCKD_MAX_PAGE_FILES",
        context={"url": page_url, "files": count, "limit": max_files},
    )


def parse_json_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 691 project page. Relative URLs resolve against `page_url`."""
    if max_files is not None:
        # Every file has a "url" key: counted in the text, a page of too many tiny entries is
        # refused before json.loads turns each into a dict (~1 KiB apiece).
        keys = (body if isinstance(body, bytes) else body.encode()).count(b'"url"')
        if keys > max_files:
            raise _too_many_files(page_url, keys, max_files)
    data: dict[str, Any] = json.loads(body)
    name = canonicalize_name(project)
    files: list[DistFile] = []
    foreign: set[Version] = set()
    entries = data.get("files", [])
    if max_files is not None and isinstance(entries, list) and len(entries) > max_files:
        raise _too_many_files(page_url, len(entries), max_files)
    for entry in within_deadline(entries, f"parsing {page_url}"):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        url: str | None = None
        filename = entry.get("filename")
        if not filename:
            url = _absolute_url(page_url, entry["url"])
            filename = url.rsplit("/", 1)[-1]
        head = _file_head(name, str(filename), foreign)
        if head is None:
            continue
        url = url or _absolute_url(page_url, entry["url"])
        hashes = entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        sha256 = sha256 if isinstance(sha256, str) else None
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        size = entry.get("size")
        dist = _dist_file(
            head,
            name,
            str(filename),
            url,
            sha256=sha256,
            size=size if isinstance(size, int) else None,
            requires_python=entry.get("requires-python"),
            yanked=_yank_reason(entry.get("yanked")),
            upload_time=entry.get("upload-time"),
            metadata=metadata,
            index_url=page_url,
        )
        files.append(dist)
    return ProjectPage(name, page_url, tuple(files), frozenset(foreign - {f.version for f in files}))


class _AnchorParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self._current: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._current = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, "".join(self._text).strip()))
            self._current = None


def _html_metadata(attrs: Mapping[str, str | None]) -> object:
    # PEP 714 renamed the attribute; older indexes (and PyTorch's) may send either.
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        if key in attrs:
            value = attrs[key]
            if value is None or value.lower() == "true":
                return True
            algo, _, digest = value.partition("=")
            return {algo.lower(): digest} if digest else True
    return None


def parse_html_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 503 project page, as the PyTorch index serves it."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    parser = _AnchorParser()
    for start in range(0, len(text), _HTML_FEED):
        check_deadline(f"parsing {page_url}")
        parser.feed(text[start : start + _HTML_FEED])
        if max_files is not None and len(parser.anchors) > max_files:
            raise _too_many_files(page_url, len(parser.anchors), max_files)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    name = canonicalize_name(project)
    files: list[DistFile] = []
    foreign: set[Version] = set()
    for attrs, link_text in within_deadline(parser.anchors, f"parsing {page_url}"):
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        algo, _, digest = fragment.partition("=")
        sha256 = digest if algo.lower() == "sha256" and digest else None
        # The PyTorch index percent-encodes the `+` of local versions in its hrefs.
        filename = unquote(url.rsplit("/", 1)[-1]) or link_text
        head = _file_head(name, filename, foreign)
        if head is None:
            continue
        yanked = attrs.get("data-yanked") if "data-yanked" in attrs else None
        dist = _dist_file(
            head,
            name,
            filename,
            url,
            sha256=sha256,
            size=None,
            requires_python=attrs.get("data-requires-python"),
            yanked=(yanked or "") if "data-yanked" in attrs else None,
            upload_time=None,
            metadata=_html_metadata(attrs),
            index_url=page_url,
        )
        files.append(dist)
    return ProjectPage(name, page_url, tuple(files), frozenset(foreign - {f.version for f in files}))
