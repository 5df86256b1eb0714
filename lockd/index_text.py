"""Text an index supplies (versions, specifiers, requirements, core metadata), parsed within bounds.

Anything an index sends may be hostile. `packaging` turns a 5,000-digit release number into a
`ValueError` (Python's int conversion limit) when a version is first compared, not when it is
parsed, and a marker nested 500 deep into a `RecursionError`. Here every text is bounded first
(its length, its runs of digits, its nesting) and then parsed and its versions converted, so a
failure happens here, as `InvalidVersion` / `InvalidSpecifier` / `InvalidRequirement`, and the
caller rules out one file or version (PEP 440, 508). `check_metadata` binds core metadata to its
file: `Name` and `Version` must be the filename's (PEP 503 / PEP 440 normalised, as pip requires)
and it may hold only so many `Requires-Dist` lines (core metadata 2.x, PEP 566).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import TypeVar

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.errors import MetadataMismatch, UnusableMetadata
from lockd.header_fields import header_fields
from lockd.memory_cache import BoundedCache

__all__ = [
    "MAX_MARKER_DEPTH",
    "MAX_REQUIREMENT_CHARS",
    "check_metadata",
    "header_fields",
    "marker_depth",
    "parse_requirement",
    "parse_specifier",
    "parse_version",
]

# Real requirement lines stay under a few hundred characters and markers under 4 levels of
# parentheses; packaging's parser recurses a few frames per level.
MAX_REQUIREMENT_CHARS = 4096
MAX_MARKER_DEPTH = 32
_MAX_VERSION_CHARS = 256
# A run of digits this long is no version number; Python refuses ints past 4,300 digits.
_LONG_NUMBER = re.compile(r"\d{65}")
_REQUIRES_DIST = re.compile(rb"^requires-dist[ \t]*:", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_SHOWN = 80
# Requires-Dist lines repeat their parts: `name>=x` under each extra that wants it, and a few
# hundred markers (`extra == "dev"`) across thousands of lines. packaging's tokenizer is most of
# a cold resolution's metadata parse (the 2,008 distinct lines of bench/cases/pypi-200: 67 ms
# whole, 26 ms by parts, each parsed once per process). Each cache is bounded by the characters
# of the parts it keeps (pypi-200: 1,342 heads of 21,000 and 436 markers of 12,000), and a part
# longer than real ones is not kept: a hostile index's lines cannot grow them past about 10 MB
# (filled with the densest parts that fit: 6.8 MB of heads, 2.3 MB of markers, tracemalloc).
_HEADS: BoundedCache[str, tuple[int, Requirement]] = BoundedCache(256 * 1024, sizeof=itemgetter(0))
_MARKERS: BoundedCache[str, tuple[int, Marker]] = BoundedCache(128 * 1024, sizeof=itemgetter(0))
_KEPT_PART_CHARS = 256
_P = TypeVar("_P")


def parse_version(text: str) -> Version:
    """A PEP 440 version whose numbers Python can hold, else `InvalidVersion`."""
    if len(text) > _MAX_VERSION_CHARS or _LONG_NUMBER.search(text):
        raise InvalidVersion(f"implausible version {_shown(text)!r}")
    try:
        return Version(text)
    except ValueError as exc:  # InvalidVersion is one
        raise InvalidVersion(f"invalid version {_shown(text)!r}") from exc


def parse_specifier(text: str) -> SpecifierSet:
    """A specifier set whose every version converts, else `InvalidSpecifier`."""
    if len(text) > MAX_REQUIREMENT_CHARS or _LONG_NUMBER.search(text):
        raise InvalidSpecifier(f"implausible specifier {_shown(text)!r}")
    specifier = SpecifierSet(text)
    _check_versions(specifier)
    return specifier


def parse_requirement(text: str) -> Requirement:
    """A PEP 508 requirement within bounds, its versions converted, else `InvalidRequirement`."""
    if len(text) > MAX_REQUIREMENT_CHARS:
        raise InvalidRequirement(f"longer than {MAX_REQUIREMENT_CHARS} characters")
    if _LONG_NUMBER.search(text):
        raise InvalidRequirement("a number too long to be a version")
    if marker_depth(text) > MAX_MARKER_DEPTH:
        raise InvalidRequirement(f"markers nested deeper than {MAX_MARKER_DEPTH}")
    head, semicolon, marker = text.partition(";")
    # A name-based requirement (no `@ url`, whose URL may hold a `;`) is its head and, after the
    # first `;`, its marker: no token of a name, extras or specifier spans a `;`. A line either
    # part refuses is parsed whole below, for packaging's own error.
    if "@" not in head:
        try:
            return _by_parts(head, marker if semicolon else None)
        except (InvalidRequirement, InvalidMarker, InvalidSpecifier, RecursionError):
            pass
    try:
        requirement = Requirement(text)
        _check_versions(requirement.specifier)
    except InvalidSpecifier as exc:
        raise InvalidRequirement(str(exc)) from None
    except RecursionError:  # the depth bound should make this unreachable; a parser change may not
        raise InvalidRequirement("nested too deeply to parse") from None
    return requirement


def _by_parts(head: str, marker: str | None) -> Requirement:
    """`Requirement(head; marker)`, from the parts as parsed (and checked) once per process."""
    parsed = _kept(_HEADS, head, _checked_head)
    return _fresh(parsed, None if marker is None else _kept(_MARKERS, marker.strip(), Marker))


def _checked_head(head: str) -> Requirement:
    parsed = Requirement(head)
    _check_versions(parsed.specifier)
    return parsed


def _kept(cache: BoundedCache[str, tuple[int, _P]], text: str, parse: Callable[[str], _P]) -> _P:
    """`parse(text)`, kept in `cache` by its text unless longer than any real part."""
    known = cache.get(text)
    if known is not None:
        return known[1]
    parsed = parse(text)
    if len(text) <= _KEPT_PART_CHARS:
        cache.put(text, (len(text), parsed))
    return parsed


def _fresh(head: Requirement, marker: Marker | None) -> Requirement:
    """A requirement of its own (its `extras` a set of its own) sharing `head`'s parsed specifier."""
    requirement = Requirement.__new__(Requirement)
    requirement.name = head.name
    requirement.url = None
    requirement.extras = set(head.extras)
    requirement.specifier = head.specifier
    requirement.marker = marker
    return requirement


def marker_depth(text: str) -> int:
    """How deeply parentheses nest outside quoted strings (PEP 508 quotes with ' or ")."""
    depth = deepest = 0
    quote = ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def check_metadata(
    raw: bytes, *, filename: str, name: NormalizedName, version: Version, max_requires_dist: int
) -> None:
    """Core metadata that belongs to the file `filename` of `name` `version`, else the reason it does not.

    Raises `MetadataMismatch` when `Name` or `Version` names another project or version, and
    `UnusableMetadata` past `max_requires_dist` Requires-Dist lines (counted before any parse).
    """
    head = _HEADER_END.split(raw, maxsplit=1)[0]
    lines = len(_REQUIRES_DIST.findall(head))
    if lines > max_requires_dist:
        raise UnusableMetadata(
            f"{filename} has {lines:,} Requires-Dist lines, more than lockd reads ({max_requires_dist:,})",
            hint="raise LOCKD_MAX_REQUIRES_DIST if a real package needs more",
            context={"filename": filename, "requires_dist": lines, "limit": max_requires_dist},
        )
    headers = header_fields(head + b"\n\n")
    said_name = str(headers.get("Name", "")).strip()
    said_version = str(headers.get("Version", "")).strip()
    if canonicalize_name(said_name) == name and _same_version(said_version, version):
        return
    raise MetadataMismatch(
        f"{filename}: its metadata says {_shown(said_name) or '(no Name)'} {_shown(said_version) or '(no Version)'}, "
        f"not {name} {version}",
        hint="the index serves metadata that belongs to another file; lockd does not use this file",
        context={
            "filename": filename,
            "metadata_name": _shown(said_name),
            "metadata_version": _shown(said_version),
        },
    )


def _same_version(text: str, version: Version) -> bool:
    try:
        return parse_version(text) == version
    except InvalidVersion:
        return False


def _check_versions(specifier: SpecifierSet) -> None:
    """Converts every version of `specifier` now, so no later comparison can raise."""
    for spec in specifier:
        if spec.operator == "===":
            continue  # compared as a string, never converted
        text = spec.version.removesuffix(".*")
        try:
            Version(text)
        except ValueError as exc:
            raise InvalidSpecifier(f"invalid version in {_shown(str(spec))!r}") from exc


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
