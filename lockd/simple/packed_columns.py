"""Per-file columns of a page form packed into a few values each, not one object per file.

A form read back is `marshal` of its columns, and marshal builds an object per value, which the
form's reader then checks value by value: pypi-300's 304 forms hold about 120,000 kept files,
and their columns of names, URLs, hashes, upload times, sizes and table indexes were over a
million objects, most of the forms' decoding time for the few files a resolution reads.

- A text column (`pack_texts`) is the strings joined, where each ends (32-bit unsigned,
  little-endian) and which are None (a byte per value, or empty where none is). Read back
  (`unpack_texts`) it is checked whole (types, sizes, the last end at the text's end) and gives
  each value by slicing when it is asked for (`TextColumn`). The ends are not checked to be in
  order (a pass over each as long as the rest of the read): slicing out of order gives other
  text, never an error, and which text is what the form's digest (from disk) or the page child
  that wrote it (from its pipe) answers for, as it does for every other value of a form.
- An index or size column (`pack_numbers`) is an array of unsigned 32-bit (indexes) or signed
  64-bit (sizes, -1 for None) numbers. Read back (`unpack_numbers`) it is an `array`, whose
  values are ints by construction; a caller checks an index column's bounds with `max`. Sizes
  read back are `Sizes`. A size no array holds (negative, past 2**63) leaves its column to be
  written value by value, as it is.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain, compress
from operator import is_
from typing import cast

__all__ = [
    "PackedText",
    "Sizes",
    "TextColumn",
    "pack_numbers",
    "pack_texts",
    "unpack_numbers",
    "unpack_texts",
]

PackedText = tuple[str, bytes, bytes]  # the values joined, their ends, a mask of Nones (or b"")

_ENDS = "I"  # 32-bit: a form is bounded far below 4 GiB
_BIG_ENDIAN = sys.byteorder == "big"
_NONE = type(None)
_STR_TYPES = frozenset({str})
_OPT_STR_TYPES = frozenset({str, _NONE})


def pack_texts(values: Sequence[str | None], *, optional: bool, checked: bool = False) -> PackedText | None:
    """`values` packed; None where one is not a string (or None, when `optional`).

    `checked`: every value is known to be a string or None already (msgspec decoded it as one).
    """
    nones = values.count(None)
    if nones and not optional:
        return None
    if not checked and not set(map(type, values)) <= (_OPT_STR_TYPES if nones else _STR_TYPES):
        return None
    texts = cast(Sequence[str], values if not nones else ["" if value is None else value for value in values])
    try:
        ends = array(_ENDS, accumulate(map(len, texts)))
    except OverflowError:
        return None
    mask = bytes(map(is_, values, [None] * len(values))) if nones else b""
    return "".join(texts), _little(ends).tobytes(), mask


def unpack_texts(packed: object, count: int, *, optional: bool) -> TextColumn | None:
    """The column `pack_texts` wrote, of `count` values; None for anything else."""
    if type(packed) is not tuple or len(packed) != 3:
        return None
    text, end_bytes, mask = packed
    if type(text) is not str or type(end_bytes) is not bytes or type(mask) is not bytes:
        return None
    if mask and (not optional or len(mask) != count or mask.strip(b"\x00\x01")):
        return None
    ends = _read(_ENDS, end_bytes, count)
    if ends is None or (ends[-1] if count else 0) != len(text):
        return None
    return TextColumn(text, ends, mask)


def pack_numbers(values: Sequence[int | None], code: str, *, checked: bool = False) -> bytes | None:
    """`values` as an array of `code` ("I": indexes, "q": sizes with None as -1); None where one
    does not fit (not an int, negative, too big). `checked`: each is an int (or None) already."""
    nones = values.count(None) if code == "q" else 0
    if not checked and not set(map(type, values)) <= ({int, _NONE} if code == "q" else {int}):
        return None
    try:
        numbers = array(
            code, cast(Sequence[int], [-1 if v is None else v for v in values] if nones else values)
        )
    except (OverflowError, TypeError):
        return None
    if code == "q" and numbers and (min(numbers) < -1 or numbers.count(-1) != nones):
        return None  # a negative size: -1 stands for None only
    return _little(numbers).tobytes()


def unpack_numbers(packed: object, count: int, code: str) -> array[int] | None:
    """The column `pack_numbers` wrote, of `count` values; None for anything else."""
    numbers = _read(code, packed, count)
    if numbers is not None and code == "q" and numbers and min(numbers) < -1:
        return None
    return numbers


def _read(code: str, data: object, count: int) -> array[int] | None:
    numbers = array(code)
    if type(data) is not bytes or len(data) != count * numbers.itemsize:
        return None
    numbers.frombytes(data)
    return _little(numbers)


def _little(numbers: array[int]) -> array[int]:
    if _BIG_ENDIAN:
        numbers.byteswap()
    return numbers


class Sizes:
    """A packed size column read back: each size, or None where -1 stands for none."""

    __slots__ = ("_sizes",)

    def __init__(self, sizes: array[int]) -> None:
        self._sizes = sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, i: int) -> int | None:
        size = self._sizes[i]
        return None if size < 0 else size


class TextColumn:
    """The values of a packed text column, each sliced out when read. Immutable."""

    __slots__ = ("_ends", "_mask", "_text")

    def __init__(self, text: str, ends: array[int], mask: bytes) -> None:
        self._text = text
        self._ends = ends
        self._mask = mask

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> str | None:
        if self._mask and self._mask[i]:
            return None
        return self._text[self._ends[i - 1] if i > 0 else 0 : self._ends[i]]

    @property
    def text_length(self) -> int:
        """The length of all values together (a None counts 0)."""
        return len(self._text)

    def values(self) -> list[str | None]:
        """Every value, in order."""
        text = self._text
        values: list[str | None] = list(
            map(text.__getitem__, map(slice, chain((0,), self._ends), self._ends))
        )
        if self._mask:
            for i in compress(range(len(values)), self._mask):
                values[i] = None
        return values
