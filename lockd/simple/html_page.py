"""PEP 503 HTML project pages as `ProjectPage` values, as the PyTorch index serves them.

A page may list at most `max_files` anchors (`ResponseTooLarge` past that) and parsing checks
the deadline as it goes (`lockd.deadline`); each file goes through the per-file rules of
`lockd.simple.files`, the same as a JSON page's.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urljoin

from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.deadline import check_deadline, within_deadline
from lockd.simple.files import DistFile, ProjectPage, dist_file, file_head, foreign_only, too_many_files

__all__ = ["parse_html_page"]

# HTMLParser takes about 10 MB/s: fed this much at a time, it stops within ~30 ms of the deadline.
_HTML_FEED = 256 * 1024


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
            raise too_many_files(page_url, len(parser.anchors), max_files)
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
        head = file_head(name, filename, foreign)
        if head is None:
            continue
        yanked = attrs.get("data-yanked") if "data-yanked" in attrs else None
        dist = dist_file(
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
    return ProjectPage(name, page_url, tuple(files), foreign_only(foreign, (f.version for f in files)))
