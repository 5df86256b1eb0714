"""The RFC 822 header fields of core metadata (METADATA, PKG-INFO), read as the email package reads them.

pip and lockd read core metadata with `email.parser.BytesHeaderParser` (policy compat32); on a
cold 200-pin resolution that parser was a tenth of the server's CPU, for four fields per file.
`header_fields` reads a well-formed header block itself and gives exactly what the email package
gives for every field (`tests/test_header_fields.py` holds the two to the same answers on
generated blocks and on real files): names matched without regard to case, a value's first line
without its leading blanks, continuation lines kept as written, the trailing newline dropped.

Anything the fast reading does not describe is left to the email package itself, whose answers
are the reference: a line that is neither a field nor a continuation (the body starts early), a
first line that is a continuation, an envelope `From ` line (a space in a field's name), a field
with no name, and a carriage return (the email parser breaks lines at \\r and \\r\\n too).
A value with bytes outside ASCII is given as the email package's `Header` renders it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HeaderFields", "header_fields"]


@dataclass(frozen=True, slots=True)
class HeaderFields:
    """Field values by lowercased name, in the order the block gives them."""

    fields: dict[str, tuple[str, ...]]

    def get(self, name: str, default: str = "") -> str:
        """The first value of the field `name` (any case), else `default`."""
        values = self.fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str] | None:
        """Every value of the field `name` (any case), in order; None when there is none."""
        values = self.fields.get(name.lower())
        return list(values) if values else None


def header_fields(raw: bytes) -> HeaderFields:
    """The header fields of `raw` (up to its first blank line); the body is left unread."""
    end = raw.find(b"\n\n")
    block = raw if end < 0 else raw[: end + 1]
    if b"\r" in block:
        return _by_email(raw)
    text = block.decode("ascii", "surrogateescape")
    if not text.endswith("\n"):
        text += "\n"
    fields: dict[str, list[str]] = {}
    position, end, field_at = 0, len(text), _FIELD.match
    while position < end:
        # Matched where the last field ended, never searched for: a search would try the pattern
        # at every later position, and a long run of name characters with no colon made that
        # quadratic (20,000 characters: 2.6 s). Here a line it does not describe ends the reading.
        match = field_at(text, position)
        if match is None:
            return _by_email(raw)
        position = match.end()
        name, first, more = match.groups()
        value = first + "\n" + more if more else first
        fields.setdefault(name.lower(), []).append(value.rstrip("\r\n"))
    return HeaderFields({name: tuple(map(_shown, values)) for name, values in fields.items()})


# A field: a name of printable ASCII but the colon (what the email parser takes as a field), a
# colon, blanks, the rest of the line, then any lines that start with a blank (continuations).
_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*(.*)\n((?:[ \t].*\n)*)")
_SURROGATES = re.compile("[\udc80-\udcff]")


def _shown(value: str) -> str:
    """The value as str() of what the email package's compat32 policy gives for it."""
    if _SURROGATES.search(value) is None:
        return value
    from email import charset, header  # noqa: PLC0415  # only for a value with bytes outside ASCII

    return str(header.Header(value, charset=charset.UNKNOWN8BIT))


def _by_email(raw: bytes) -> HeaderFields:
    from email.parser import BytesHeaderParser  # noqa: PLC0415  # loaded only for an odd block

    fields: dict[str, list[str]] = {}
    for name, value in BytesHeaderParser().parsebytes(raw).items():
        fields.setdefault(name.lower(), []).append(str(value))
    return HeaderFields({name: tuple(values) for name, values in fields.items()})
