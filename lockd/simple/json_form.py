"""A PEP 691 JSON page straight to its form (`lockd.simple.page_form`), for the page child.

The page child parses a page only to send its form, so building a `DistFile` per kept file and
then reading each one's fields back out (`page_columns`) is work no one uses: here the decoded
entries the page's parser keeps (`kept_entries`, the parser's own rules) become the form's
columns directly. Same columns, so the same form, as `encode_page(parse_json_page(...))`
(`tests/test_json_form.py`); a page msgspec does not decode goes that way itself.

Measured on bench/cases/pypi-200's 205 pages (167,509 listed files, 95,436 kept), 3 runs each
in one process: parse then form 1.29-1.38 s, straight to the form 1.15-1.22 s.
"""

from __future__ import annotations

from operator import attrgetter

import msgspec
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.simple.files import foreign_only, requires_python_of, yank_reason
from lockd.simple.form_columns import FileColumns
from lockd.simple.json_page import JsonEntry, decode_entries, kept_entries, parse_json_page
from lockd.simple.page_form import encode_columns, encode_page

__all__ = ["json_page_form"]

_UNSET = msgspec.UNSET
_CORE = attrgetter("core_metadata")
_DIST_INFO = attrgetter("dist_info_metadata")


def json_page_form(
    body: bytes | str, page_url: str, project: str, source: str, *, max_files: int | None = None
) -> bytes | None:
    """The form of the page `parse_json_page(body, page_url, project)` gives, for `source`.

    Raises what `parse_json_page` raises; None where no form would be kept (as `encode_page`).
    """
    entries = decode_entries(body, page_url, max_files)
    if entries is None:
        return encode_page(parse_json_page(body, page_url, project, max_files=max_files), source)
    name = canonicalize_name(project)
    foreign: set[Version] = set()
    kept, filenames, heads = kept_entries(entries, page_url, name, foreign)
    kinds, versions, tag_sets = tuple(zip(*heads, strict=True)) or ((), (), ())
    hashes = list(map(attrgetter("hashes"), kept))
    metadata, metadata_sha256s = _metadata(kept)
    return encode_columns(
        FileColumns(
            name,
            page_url,
            foreign_only(foreign, versions),
            filenames,
            kinds,
            versions,
            tag_sets,
            list(map(requires_python_of, map(attrgetter("requires_python"), kept))),
            list(map(yank_reason, map(attrgetter("yanked"), kept))),
            list(map(attrgetter("url"), kept)),
            [None if h is None else h.sha256 for h in hashes],
            list(map(attrgetter("size"), kept)),
            list(map(attrgetter("upload_time"), kept)),
            metadata,
            metadata_sha256s,
        ),
        source,
        typed=True,  # msgspec decoded each field as the type the form takes (`JsonEntry`)
    )


def _metadata(kept: list[JsonEntry]) -> tuple[list[bool | None], list[str | None]]:
    """Each file's metadata as `JsonEntry.raw` gives it (listed or not, and its sha256)."""
    count = len(kept)
    # PyPI lists no PEP 658 metadata: both keys absent from every entry, counted in C.
    if list(map(_CORE, kept)).count(_UNSET) == count and list(map(_DIST_INFO, kept)).count(_UNSET) == count:
        return [None] * count, [None] * count
    listed: list[bool | None] = []
    sha256s: list[str | None] = []
    for entry in kept:
        _, _, _, _, is_listed, sha256 = entry.raw()
        listed.append(True if is_listed else None)
        sha256s.append(sha256)
    return listed, sha256s
