"""A page's files field by field: what `lockd.simple.page_form` writes a form from.

Two makers: `page_columns`, from a parsed `ProjectPage` (any parser, any page), and
`lockd.simple.json_form`, straight from a PEP 691 page's decoded entries without building a
`DistFile` per file (the page child's path, where the page itself is never used). Both give the
same columns for the same page (`tests/test_json_form.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter, methodcaller
from typing import Literal

from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.simple.files import ProjectPage

__all__ = ["FileColumns", "page_columns"]


@dataclass(frozen=True, slots=True)
class FileColumns:
    """One item per file in each column, in the page's order.

    The details (`urls` to `metadata_sha256s`) are as the index wrote them (`RawDetails`);
    `names` and `index_urls` are None where every file has the page's own.
    """

    name: NormalizedName
    index_url: str
    foreign_versions: frozenset[Version]
    filenames: Sequence[str]
    kinds: Sequence[Literal["wheel", "sdist"]]
    versions: Sequence[Version]
    tag_sets: Sequence[frozenset[Tag]]
    requires_pythons: Sequence[SpecifierSet | None]
    yanks: Sequence[str | None]
    urls: Sequence[str]
    sha256s: Sequence[str | None]
    sizes: Sequence[int | None]
    uploads: Sequence[str | None]
    metadata: Sequence[bool | str | None]
    metadata_sha256s: Sequence[str | None]
    names: Sequence[str] | None = None
    index_urls: Sequence[str] | None = None


def page_columns(page: ProjectPage) -> FileColumns:
    # Transposed with `zip(*…)`, in C: the child writes a form of every page a server fetches,
    # and a loop per field per file was a fifth of the cost (pypi-200's pages: 0.40 -> 0.32 s).
    # A page of no files transposes to nothing: empty columns stand for it.
    files = page.files
    (filenames, kinds, versions, tag_sets, specs, yanks, names, index_urls) = tuple(zip(*map(_FILE_FIELDS, files), strict=True)) or ((),) * 8  # fmt: skip
    # The details as the index wrote them: a file the resolution has not read yet is never worked
    # out here (`DistFile.raw_details`); reading one back applies the parser's rules then.
    urls, sha256s, sizes, uploads, metadata, metadata_sha256s = tuple(zip(*map(_RAW_DETAILS, files), strict=True)) or ((),) * 6  # fmt: skip
    return FileColumns(
        page.name,
        page.index_url,
        page.foreign_versions,
        filenames,
        kinds,
        versions,
        tag_sets,
        specs,
        yanks,
        urls,
        sha256s,
        sizes,
        uploads,
        metadata,
        metadata_sha256s,
        names,
        index_urls,
    )


_FILE_FIELDS = attrgetter(
    "filename", "kind", "version", "tags", "requires_python", "yanked", "name", "index_url"
)
_RAW_DETAILS = methodcaller("raw_details")
