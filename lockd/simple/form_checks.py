"""The checks a page form's file columns pass before a page is built from them (`lockd.simple.page_form`).

Every column is checked whole, in C where it can be, so that building a file later cannot fail:
the plain ones (a tuple of values) for their length and their values' types, the packed ones
(`lockd.simple.packed_columns`) as they are read back, and the tables of tags and texts the
columns index into. Anything off is None or False, which the reader takes as a miss.
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

from packaging.tags import Tag

from lockd.simple.packed_columns import Sizes, unpack_numbers, unpack_texts

__all__ = ["FILE_FIELDS", "INDEX_TYPES", "strings", "tag_sets", "typed_columns", "unpacked_columns"]

FILE_FIELDS = 14  # a form's file columns, in `lockd.simple.page_form`'s layout
INDEX_TYPES: frozenset[type] = frozenset({int})

_NONE = type(None)
_OPT_STR: frozenset[type] = frozenset({str, _NONE})
_OPT_INDEX: frozenset[type] = frozenset({int, _NONE})
# The file columns that are not packed, by position, and the types each may hold: requires-python
# (an index or None), yanked, metadata URL (not False: see `typed_columns`), metadata sha256, name,
# index URL. Filename, URL, kind, version, tags, sha256, size and upload time are packed.
_PLAIN: dict[int, frozenset[type]] = {
    7: _OPT_INDEX,
    8: _OPT_STR,
    10: frozenset({str, bool, _NONE}),
    11: _OPT_STR,
    12: _OPT_STR,
    13: _OPT_STR,
}


def typed_columns(columns: tuple[object, ...], count: int) -> bool:
    """Whether the file columns that are not packed are tuples of `count` values, each holding
    only its field's types (the packed ones are checked as they are read back)."""
    if len(columns) != FILE_FIELDS:
        return False
    plain = _PLAIN if type(columns[6]) is not tuple else {**_PLAIN, 6: _OPT_INDEX}
    for i, allowed in plain.items():
        column = columns[i]
        if type(column) is not tuple or len(column) != count:
            return False
        if column.count(None) != count and not set(map(type, column)) <= allowed:  # most are all None
            return False
    return False not in cast(tuple[object, ...], columns[10])  # metadata: True or a URL, never False


def unpacked_columns(columns: tuple[object, ...], count: int) -> tuple[object, ...] | None:
    """The columns with the packed ones read back; None if one does not read."""
    if len(columns) != FILE_FIELDS:
        return None
    read = list(columns)
    for i in (0, 1, 5, 9):
        read[i] = unpack_texts(columns[i], count, optional=i in (5, 9))
    for i in (2, 3, 4):
        # As a tuple: a finder reads these for every file of a page each time it judges one, and
        # an array makes an int object at each read (a tuple holds them, most of them the
        # interpreter's shared small ints, so making it costs little).
        numbers = unpack_numbers(columns[i], count, "I")
        read[i] = None if numbers is None else tuple(numbers)
    if type(columns[6]) is bytes:
        sizes = unpack_numbers(columns[6], count, "q")
        read[6] = None if sizes is None else Sizes(sizes)
    elif type(columns[6]) is not tuple:  # a tuple: sizes one by one, checked as the plain columns
        return None
    return None if None in read[:10] else tuple(read)


def strings(table: object) -> bool:
    """Whether `table` is a tuple of strings."""
    return type(table) is tuple and set(map(type, table)) <= {str}


def tag_sets(table: object) -> list[frozenset[Tag]] | None:
    """The tag sets a form writes as tuples of (interpreter, abi, platform); None if one is not."""
    if type(table) is not tuple:
        return None
    found: list[frozenset[Tag]] = []
    for triples in table:
        if type(triples) is not tuple:
            return None
        for triple in triples:
            if type(triple) is not tuple or len(triple) != 3 or set(map(type, triple)) != {str}:
                return None
        found.append(_tag_set(triples))
    return found


@lru_cache(maxsize=8192)
def _tag_set(triples: tuple[tuple[str, str, str], ...]) -> frozenset[Tag]:
    """One tag set, checked: built once per process (most pages share a few dozen), and then one
    object, whose hash the finder's per-tag-set answers reuse."""
    return frozenset(Tag(*triple) for triple in triples)
