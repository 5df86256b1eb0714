"""An organisation's own indexes beside PyPI: each named, with the projects it serves.

Configured by the operator in a TOML file (`LOCKD_PRIVATE_INDEXES`):

    [[index]]
    name = "acme"
    url = "https://ci:secret@pypi.acme.internal/simple/"   # credentials are split off
    projects = ["acme-*", "internal-tool"]                 # exact names or globs

Routing is strict both ways, as for the torch family: a project an index lists comes only
from it (an internal name never falls back to PyPI, which defeats dependency confusion), and
no other project ever comes from it. A request selects indexes by name only, never by URL
(`indexes` in the options); an index it does not select still reserves its projects, so a
request naming one of them is refused instead of being served by PyPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

__all__ = ["NamedIndex", "PrivateIndexError", "parse_private_indexes"]


class PrivateIndexError(ValueError):
    """The private-index configuration is not what the module docstring describes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedIndex:
    """One configured index: its name, URL (without credentials), the projects it serves."""

    name: str
    url: str
    projects: tuple[str, ...]  # normalised names or globs, sorted
    selected: bool = True  # False: the request did not select it; its projects are refused

    def serves(self, project: NormalizedName) -> bool:
        return any(fnmatchcase(project, pattern) for pattern in self.projects)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "projects": list(self.projects),
            "selected": self.selected,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NamedIndex:
        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            projects=tuple(str(p) for p in data["projects"]),
            selected=bool(data.get("selected", True)),
        )


def _pattern(text: str) -> str:
    # Normalise the name part of a glob the way PEP 503 normalises names: `Acme_*` → `acme-*`.
    return "*".join(canonicalize_name(part) if part else "" for part in text.split("*"))


def parse_private_indexes(text: str) -> tuple[tuple[NamedIndex, str], ...]:
    """(index, URL as configured, with any credentials) for each `[[index]]` entry, checked."""
    import tomllib  # noqa: PLC0415 (TOML is read only from a file the operator names)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrivateIndexError(f"the private indexes are not valid TOML: {exc}") from None
    entries = data.get("index", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PrivateIndexError("index must be an array of tables")
    found: list[tuple[NamedIndex, str]] = []
    for entry in entries:
        name, url, projects = entry.get("name"), entry.get("url"), entry.get("projects")
        if not isinstance(name, str) or not name.isidentifier():
            raise PrivateIndexError(f"an index needs a name made of letters, digits and _: {name!r}")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PrivateIndexError(f"index {name}: url must be an http:// or https:// URL")
        if (
            not isinstance(projects, list)
            or not projects
            or not all(isinstance(p, str) and p for p in projects)
        ):
            raise PrivateIndexError(f"index {name}: projects must be a non-empty list of names or globs")
        if any(n.name == name for n, _ in found):
            raise PrivateIndexError(f"index {name} is configured twice")
        patterns = tuple(sorted({_pattern(p) for p in projects}))
        found.append((NamedIndex(name=name, url=url, projects=patterns), url))
    return tuple(found)
