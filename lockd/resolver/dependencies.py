"""What a candidate depends on, on the target: its metadata read under the target's markers.

`Requires-Dist` (PEP 508, core metadata PEP 566) lines whose markers hold in the target's
environment (never the host's) become requirements, one resolvelib identity per extra;
`Requires-Python` becomes a dependency on the pseudo-project `<python>`. A line pip cannot
parse makes the whole version unusable, as in pip; an unparsable `Requires-Python` is
ignored, as in pip. Metadata comes from the index and may be hostile: every line is parsed
within bounds (`lockd.index_text`: its length, nesting and numbers), a marker that cannot be
evaluated also rules the version out, and the deadline is checked as the lines are read.
"""

from __future__ import annotations

from contextlib import suppress
from functools import lru_cache

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from lockd.deadline import within_deadline
from lockd.index_text import header_fields, parse_requirement, parse_specifier
from lockd.inputs import InputRequirement
from lockd.resolver.candidates import (
    AnyRequirement,
    InvalidMetadata,
    ProjectCandidate,
    ProjectRequirement,
    PythonRequirement,
)
from lockd.target import Target

__all__ = ["ParsedMetadata", "base_requirement", "marker_true", "parse_dependencies", "split_extras"]

# (Requires-Python as written, the requirements that apply to the target)
ParsedMetadata = tuple[str | None, list[AnyRequirement]]


@lru_cache(maxsize=4096)
def base_requirement(name: NormalizedName, version: Version) -> ProjectRequirement:
    """What `name[extra]==version` depends on first: `name==version`, one object for every resolution.

    Requirements read from metadata are the same objects in every resolution, and
    `Finder.matching` keeps its answers by the identity of the specifier sets: a set made anew
    each time missed each time (fully cached pypi-300: 20 of the 25 misses left once the input's
    lines were kept, `lockd.requirements_file`).
    """
    return ProjectRequirement(name=name, extra=None, specifier=SpecifierSet(f"=={version}"))


def marker_true(target: Target, marker: Marker, extra: str) -> bool:
    """The marker on the target, with `extra` set ("" outside any extra)."""
    environment = dict(target.marker_environment)
    environment["extra"] = extra
    return marker.evaluate(environment)


def split_extras(requirement: Requirement, source: InputRequirement | None = None) -> list[AnyRequirement]:
    """`foo[a,b]>=1` → `foo>=1`, `foo[a]>=1`, `foo[b]>=1`: one resolvelib identity per extra."""
    name = canonicalize_name(requirement.name)
    found: list[AnyRequirement] = [
        ProjectRequirement(name=name, extra=None, specifier=requirement.specifier, source=source)
    ]
    for extra in sorted({canonicalize_name(e) for e in requirement.extras}):
        found.append(
            ProjectRequirement(name=name, extra=extra, specifier=requirement.specifier, source=source)
        )
    return found


def parse_dependencies(
    target: Target, candidate: ProjectCandidate, raw: bytes, extra: NormalizedName | None
) -> ParsedMetadata:
    """(Requires-Python text, dependencies on the target) of `candidate` or of its `extra`."""
    headers = header_fields(raw)
    found: list[AnyRequirement] = []
    requires_python = headers.get("Requires-Python")
    requires_python_text = str(requires_python).strip() if requires_python else None
    if extra is None and requires_python_text:
        # pip ignores an unparsable Requires-Python in metadata, so do we
        with suppress(InvalidSpecifier):
            found.append(PythonRequirement(specifier=parse_specifier(requires_python_text)))
    lines = headers.get_all("Requires-Dist") or []
    for line in within_deadline(lines, f"reading the metadata of {candidate}"):
        text = str(line).strip()
        try:
            requirement = parse_requirement(text)
            applies = _applies(target, requirement, extra)
        except (InvalidRequirement, UndefinedComparison, UndefinedEnvironmentName) as exc:
            # Every line counts, whatever its marker: pip parses them all before it evaluates
            # any, and discards the version if one fails.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            invalid = InvalidMetadata(
                name=candidate.name, version=candidate.version, line=text[:200], reason=reason[:300]
            )
            return requires_python_text or None, [invalid]
        if applies:
            found.extend(split_extras(requirement))
    return requires_python_text or None, found


def _applies(target: Target, requirement: Requirement, extra: NormalizedName | None) -> bool:
    if requirement.marker is None:
        return extra is None
    if extra is None:
        return marker_true(target, requirement.marker, "")
    # An extra's own dependencies: true for this extra, not already true without it.
    return marker_true(target, requirement.marker, extra) and not marker_true(target, requirement.marker, "")
