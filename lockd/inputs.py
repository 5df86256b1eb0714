"""requirements.in text + a target → one normalised `LockRequest`, and its input digest.

Normalise once, at intake: names are canonicalised (PEP 503), extras sorted, specifiers and
markers put in packaging's normal form. The input digest is the sha256 of canonical JSON
`{"lockd-input": 1, requirements, constraints, target, indexes, options}`, so comments,
blank lines, whitespace and line order never change it, while any change of a specifier,
extra, marker, target, index plan or option always does. `LockRequest.canonical_bytes()` is
that JSON, the one form an input is digested and stored in; `LockRequest.from_json` reads it back
to an equal request.

Reading the requirements files themselves (comments, continuations, what is refused) is
`lockd.requirements_file`; its names are re-exported here for the callers of intake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.accelerator import Selection
from lockd.errors import InvalidRequest
from lockd.metadata_overrides import MetadataOverride
from lockd.requirements_file import (
    MAX_EXTRAS,
    MAX_LINE_CHARS,
    MAX_MARKER_DEPTH,
    MAX_NUMBER_DIGITS,
    InputRequirement,
    decode_body,
    parse_requirements,
)
from lockd.routing import IndexPlan
from lockd.target import Target

__all__ = [
    "INPUT_SCHEMA",
    "MAX_EXTRAS",
    "MAX_LINE_CHARS",
    "MAX_MARKER_DEPTH",
    "MAX_NUMBER_DIGITS",
    "InputRequirement",
    "LockOptions",
    "LockRequest",
    "canonical_json",
    "decode_body",
    "parse_as_of",
    "parse_requirements",
    "sha256_hex",
]

INPUT_SCHEMA = 1


def canonical_json(value: object) -> bytes:
    """The one serialisation that digests are taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _in_normal_order(requirements: Iterable[InputRequirement]) -> tuple[InputRequirement, ...]:
    # Sorted and without duplicates, as the digest sees them: a resolution depends on nothing
    # the digest ignores, and a request read back from its JSON is equal to the one written.
    # The sort is stable, so of two equal lines the first written is kept (and named in errors).
    unique: dict[str, InputRequirement] = {}
    for item in sorted(requirements, key=lambda r: r.canonical):
        unique.setdefault(item.canonical, item)
    return tuple(unique.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class LockOptions:
    """Resolution options that change the result, and so enter the digest.

    `as_of` is normalised to UTC (a naive time is taken as UTC), so one instant has one digest
    however it was written, and it compares with the upload times of PEP 700, which are aware.
    """

    prereleases: bool = False
    as_of: datetime | None = None
    # pip's `--only-binary :all:`: versions without a wheel for the target are ruled out, so
    # the image that installs the lock never compiles. Written to JSON only when set, so every
    # input digest from before the option existed is unchanged.
    only_binary: bool = False
    # The operator's dependency metadata for sdists nothing else describes (in the JSON only
    # when configured, for the same reason).
    metadata_overrides: tuple[MetadataOverride, ...] = ()

    def __post_init__(self) -> None:
        if self.as_of is not None:
            object.__setattr__(self, "as_of", _utc(self.as_of))

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "prereleases": self.prereleases,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }
        if self.only_binary:
            found["only_binary"] = True
        if self.metadata_overrides:
            found["metadata_overrides"] = [o.to_json() for o in self.metadata_overrides]
        return found

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockOptions:
        as_of = data.get("as_of")
        return cls(
            prereleases=bool(data.get("prereleases", False)),
            as_of=None if as_of is None else parse_as_of(as_of),
            only_binary=bool(data.get("only_binary", False)),
            metadata_overrides=tuple(
                MetadataOverride.from_json(o) for o in data.get("metadata_overrides", ())
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRequest:
    """Everything a resolution depends on, and nothing else.

    Requirements and constraints are kept in their normal order (sorted by normal form, each
    once), so two requests with one digest are equal values and resolve the same way.
    """

    requirements: tuple[InputRequirement, ...]
    constraints: tuple[InputRequirement, ...]
    target: Target
    plan: IndexPlan
    options: LockOptions = field(default_factory=LockOptions)
    # Versions the resolver tries first (another target's pins in a multi-target request, a
    # name's current pins). They change the result, so they enter the digest, only when given.
    preferences: tuple[tuple[NormalizedName, Version], ...] = ()
    # How `cuda=auto` chose the variant: said in the response, not part of the input.
    selection: Selection | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requirements", _in_normal_order(self.requirements))
        object.__setattr__(self, "constraints", _in_normal_order(self.constraints))
        object.__setattr__(self, "preferences", tuple(sorted(dict(self.preferences).items())))

    @property
    def preferred(self) -> dict[NormalizedName, Version]:
        return dict(self.preferences)

    def to_json(self) -> dict[str, Any]:
        """The canonical input: what is stored, and what the digest is taken over."""
        data = {
            "lockd-input": INPUT_SCHEMA,
            "requirements": [r.to_json() for r in self.requirements],
            "constraints": [c.to_json() for c in self.constraints],
            "target": self.target.to_json(),
            "indexes": self.plan.to_json(),
            "options": self.options.to_json(),
        }
        if self.preferences:
            data["preferences"] = {name: str(version) for name, version in self.preferences}
        return data

    def canonical_bytes(self) -> bytes:
        """The stored input, byte for byte; its sha256 is the input digest."""
        return canonical_json(self.to_json())

    @property
    def digest(self) -> str:
        return sha256_hex(self.canonical_bytes())

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | bytes | str) -> LockRequest:
        """A stored canonical input back as a request (a refresh re-resolves exactly this)."""
        if isinstance(data, bytes | str):
            data = json.loads(data)
        if not isinstance(data, Mapping) or data.get("lockd-input") != INPUT_SCHEMA:
            raise InvalidRequest(f"not a lockd input of schema {INPUT_SCHEMA}")
        return cls(
            requirements=parse_requirements("\n".join(data["requirements"]), url_hosts="any"),
            constraints=parse_requirements("\n".join(data["constraints"]), source="constraints.txt"),
            target=Target.from_json(data["target"]),
            plan=IndexPlan.from_json(data["indexes"]),
            options=LockOptions.from_json(data["options"]),
            preferences=_preferences_from_json(data.get("preferences", {})),
        )


def _preferences_from_json(data: object) -> tuple[tuple[NormalizedName, Version], ...]:
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidRequest(
            "preferences must map project names to versions", context={"field": "preferences"}
        )
    try:
        return tuple((canonicalize_name(str(name)), Version(version)) for name, version in data.items())
    except InvalidVersion:
        raise InvalidRequest(
            "preferences must map project names to versions", context={"field": "preferences"}
        ) from None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(
            f"as_of {moment.isoformat()} is outside the range of dates in UTC",
            hint="give as_of as a date and time in UTC, e.g. 2025-01-31T00:00:00Z",
            context={"field": "as_of", "value": moment.isoformat()},
        ) from None


def parse_as_of(text: str) -> datetime:
    """An `as_of` given as text (ISO 8601 date or date and time; naive means UTC), as in the CLI."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"as_of {text!r} is not an ISO 8601 date and time",
            hint="give as_of as a date and time in UTC, e.g. 2025-01-31T00:00:00Z",
            context={"field": "as_of", "value": text[:100]},
        ) from None
    return _utc(moment)
