"""A page form's files, read back with their details pending (`lockd.simple.page_form`).

A form keeps each file's URL, hashes, size, upload time and metadata as the index wrote them,
column by column. `Rows` holds a form's columns; each file gets a `Row` (its index into them) as
its `PendingDetails`, so reading a form builds no URL, hash or time until the file is read, and
then by the parser's own rules (`details_from_raw`), as for a file parsed from the page itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import msgspec

from lockd.simple.dist_file import Details, RawDetails
from lockd.simple.files import details_from_raw

__all__ = ["Row", "Rows"]

_S = tuple[str, ...]
_SN = tuple[str | None, ...]
_IN = tuple[int | None, ...]


@dataclass(frozen=True, slots=True)
class Rows:
    """A form's detail columns, shared by its files' `Row`s."""

    url_base: str
    whole: frozenset[int]
    url_parts: _S
    filenames: _S
    sha256s: _SN
    sizes: _IN
    uploads: _SN
    metadata: tuple[str | bool | None, ...]
    metadata_sha256s: _SN

    def text_length(self) -> int:
        """`DistFile.text_length` of every row's file (its URL, metadata URL and name), counted in C
        but for listed metadata."""
        names = list(map(len, self.filenames))
        urls = list(map(len, self.url_parts))
        base = len(self.url_base)
        # URLs (base, part, then the name unless stored whole), and the names themselves.
        total = base * len(urls) + sum(urls) + 2 * sum(names) - sum(names[i] for i in self.whole)
        if self.metadata.count(None) != len(self.metadata):  # PyPI lists none
            for i, metadata in enumerate(self.metadata):
                if metadata is True:
                    total += base + urls[i] + (0 if i in self.whole else names[i]) + len(".metadata")
                elif metadata is not None:
                    total += len(cast(str, metadata))
        return total

    def url(self, i: int) -> str:
        if i in self.whole:
            return self.url_base + self.url_parts[i]
        return self.url_base + self.url_parts[i] + self.filenames[i]


class Row(msgspec.Struct, frozen=True, gc=False):
    """One file of a form, as `PendingDetails`: built in C, one per file, read when the file is."""

    rows: Rows
    i: int

    def raw(self) -> RawDetails:
        rows, i = self.rows, self.i
        return (
            rows.url(i),
            rows.sha256s[i],
            rows.sizes[i],
            rows.uploads[i],
            rows.metadata[i],
            rows.metadata_sha256s[i],
        )

    def details(self, page_url: str) -> Details:
        return details_from_raw(self.raw(), page_url)

    def text_length(self) -> int:
        rows, i = self.rows, self.i
        url = len(rows.url(i))
        metadata = rows.metadata[i]
        return url + (0 if metadata is None else url + 9 if metadata is True else len(cast(str, metadata)))
