"""A page form's files, read back with their details pending (`lockd.simple.page_form`).

A form keeps each file's URL, hashes, size, upload time and metadata as the index wrote them,
column by column. `Rows` holds a form's columns; each file gets a `Row` (its index into them) as
its `PendingDetails`, so reading a form builds no URL, hash or time until the file is read, and
then by the parser's own rules (`details_from_raw`), as for a file parsed from the page itself.
Names, URLs, hashes, sizes and upload times stay packed (`lockd.simple.packed_columns`): a value
is read out when its file is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import msgspec

from lockd.simple.dist_file import Details, RawDetails
from lockd.simple.files import details_from_raw
from lockd.simple.packed_columns import TextColumn

__all__ = ["Row", "Rows"]

_SN = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Rows:
    """A form's detail columns, shared by its files' `Row`s."""

    url_base: str
    whole: frozenset[int]
    url_parts: TextColumn
    filenames: TextColumn  # no None in these two
    sha256s: TextColumn
    sizes: Sequence[int | None]  # `Sizes`, or a tuple where one is none an array holds
    uploads: TextColumn
    metadata: tuple[str | bool | None, ...]
    metadata_sha256s: _SN

    def text_length(self) -> int:
        """`DistFile.text_length` of every row's file (its URL, metadata URL and name), from the
        packed columns' lengths but for listed metadata."""
        names = self.filenames
        # URLs (base, part, then the name unless stored whole), and the names themselves.
        total = len(self.url_base) * len(names) + self.url_parts.text_length + 2 * names.text_length
        total -= sum(len(cast(str, names[i])) for i in self.whole)
        if self.metadata.count(None) != len(self.metadata):  # PyPI lists none
            for i, metadata in enumerate(self.metadata):
                if metadata is True:
                    total += len(self.url(i)) + len(".metadata")
                elif metadata is not None:
                    total += len(cast(str, metadata))
        return total

    def url(self, i: int) -> str:
        part = cast(str, self.url_parts[i])
        if i in self.whole:
            return self.url_base + part
        return self.url_base + part + cast(str, self.filenames[i])


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
