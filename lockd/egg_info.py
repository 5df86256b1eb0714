"""setuptools' `*.egg-info/requires.txt` read as data: an sdist's dependencies without a build.

Most sdists made by setuptools carry `<name>.egg-info/requires.txt` beside a PKG-INFO too old
to be trusted (Metadata-Version < 2.2, PEP 643). The file is what `setup.py egg_info` wrote
from `install_requires` and `extras_require` when the sdist was made, in pkg_resources'
format: requirement lines first, then sections

    [extra]            requirements of the extra
    [:marker]          requirements under an environment marker
    [extra:marker]     both

This module turns it into PEP 566 `Requires-Dist` lines (`dep; extra == "x" and (marker)`),
and both together into a core-metadata document the resolver reads like any other. Pure: no
I/O, nothing executed; the caller hands over the text.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["RequiresTxtError", "core_metadata", "requires_dist"]


class RequiresTxtError(ValueError):
    """A line or section header of requires.txt that is not what setuptools writes."""


def requires_dist(requires_txt: str) -> list[str]:
    """The `Requires-Dist` values equivalent to a requires.txt, in its order."""
    found: list[str] = []
    extra = ""
    marker: Marker | None = None
    for number, raw in enumerate(requires_txt.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            extra, marker = _section(line, number)
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise RequiresTxtError(
                f"requires.txt line {number}: {line!r} is not a requirement ({exc})"
            ) from None
        found.append(_with_section(requirement, extra, marker))
    return found


def _section(line: str, number: int) -> tuple[str, Marker | None]:
    if not line.endswith("]"):
        raise RequiresTxtError(f"requires.txt line {number}: unclosed section {line!r}")
    extra, _, marker_text = line[1:-1].partition(":")
    marker = None
    if marker_text.strip():
        try:
            marker = Marker(marker_text.strip())
        except InvalidMarker as exc:
            raise RequiresTxtError(
                f"requires.txt line {number}: bad marker {marker_text!r} ({exc})"
            ) from None
    return canonicalize_name(extra.strip()) if extra.strip() else "", marker


def _with_section(requirement: Requirement, extra: str, marker: Marker | None) -> str:
    """The requirement with its section's extra and marker and-ed onto its own marker."""
    parts = [f"({m})" for m in (requirement.marker, marker) if m is not None]
    if extra:
        parts.append(f'extra == "{extra}"')
    base = str(Requirement(str(requirement).split(";", 1)[0]))
    if not parts:
        return base
    if len(parts) == 1 and not extra:
        return f"{base}; {parts[0][1:-1]}"
    return f"{base}; {' and '.join(parts)}"


def core_metadata(
    *,
    name: str,
    version: str,
    requires: Iterable[str],
    requires_python: str | None,
    source: str,
    source_header: str,
) -> bytes:
    """A Metadata-Version 2.1 document with these dependencies, stamped with where they came from."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires)
    lines.append(f"{source_header}: {source}")
    return ("\n".join(lines) + "\n").encode("utf-8")
