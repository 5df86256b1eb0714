"""The operator's per-package dependency metadata, for sdists nothing else can describe.

flash-attn ships only an sdist whose dependencies only a build (with torch and CUDA) could
tell. As uv's `dependency-metadata` does, the operator states them in a TOML file
(`LOCKD_METADATA_OVERRIDES`):

    [[dependency-metadata]]
    name = "flash-attn"
    version = "2.6.3"            # optional: a version, or a specifier such as ">=2.6"
    requires-dist = ["torch", "einops"]
    requires-python = ">=3.9"    # optional

An override is used only when the sdist has no static PKG-INFO, no egg-info and no sandboxed
build result; it is part of `LockOptions`, so it enters the input digest, and the lock
records `metadata: override` for the package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["MetadataOverride", "MetadataOverrideError", "find_override", "parse_overrides"]


class MetadataOverrideError(ValueError):
    """The overrides file is not what the module docstring describes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataOverride:
    """The dependencies of `name` (at the versions `versions` allows) as the operator states them."""

    name: NormalizedName
    versions: SpecifierSet
    requires_dist: tuple[str, ...]
    requires_python: str | None = None

    def matches(self, name: NormalizedName, version: Version) -> bool:
        return name == self.name and self.versions.contains(version, prereleases=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(self.versions),
            "requires_dist": list(self.requires_dist),
            "requires_python": self.requires_python,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetadataOverride:
        return _override(data, "requires_dist", "requires_python")


def find_override(
    overrides: Iterable[MetadataOverride], name: NormalizedName, version: Version
) -> MetadataOverride | None:
    """The first override for this version of `name`, in the order the operator wrote them."""
    return next((o for o in overrides if o.matches(name, version)), None)


def parse_overrides(text: str) -> tuple[MetadataOverride, ...]:
    """The `[[dependency-metadata]]` entries of an overrides file, checked."""
    import tomllib  # noqa: PLC0415 (TOML is read only from a file the operator names)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MetadataOverrideError(f"the metadata overrides are not valid TOML: {exc}") from None
    entries = data.get("dependency-metadata", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise MetadataOverrideError("dependency-metadata must be an array of tables")
    return tuple(_override(entry, "requires-dist", "requires-python") for entry in entries)


def _override(data: Mapping[str, Any], dist_key: str, python_key: str) -> MetadataOverride:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise MetadataOverrideError("every dependency-metadata entry needs a name")
    requires = data.get(dist_key, [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise MetadataOverrideError(f"{name}: {dist_key} must be a list of requirement strings")
    for requirement in requires:
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise MetadataOverrideError(f"{name}: {requirement!r} is not a requirement ({exc})") from None
    python = data.get(python_key)
    try:
        if python is not None:
            SpecifierSet(str(python))
        versions = _versions(data.get("version"))
    except (InvalidSpecifier, InvalidVersion) as exc:
        raise MetadataOverrideError(f"{name}: {exc}") from None
    return MetadataOverride(
        name=canonicalize_name(name),
        versions=versions,
        requires_dist=tuple(requires),
        requires_python=None if python is None else str(python),
    )


def _versions(value: object) -> SpecifierSet:
    if value is None or value == "":
        return SpecifierSet()
    text = str(value).strip()
    if text[0].isdigit():
        return SpecifierSet(f"=={Version(text)}")
    return SpecifierSet(text)
