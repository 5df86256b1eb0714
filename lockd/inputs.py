"""requirements.in text + a target → one normalised `LockRequest`, and its input digest.

Normalise once, at intake: names are canonicalised (PEP 503), extras sorted, specifiers and
markers put in packaging's normal form. The input digest is the sha256 of canonical JSON
`{"lockd-input": 1, requirements, constraints, target, indexes, options}`, so comments,
blank lines, whitespace and line order never change it, while any change of a specifier,
extra, marker, target, index plan or option always does. `LockRequest.canonical_bytes()` is
that JSON, the one form an input is digested and stored in; `LockRequest.from_json` reads it back
to an equal request.

lockd locks names and specifiers only: includes (`-r`, `-c`), editables, URLs, paths, VCS
references and index options in the body are refused with `unsupported-requirement`
(indexes are configuration, constraints a separate field).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.accelerator import Selection
from lockd.errors import InputTooLarge, InvalidRequest, InvalidRequirement, UnsupportedRequirement
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
_URL_SCHEMES = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|zip)$", re.IGNORECASE)
# Far above any real requirement; a longer line would become an index URL no server accepts.
MAX_LINE_CHARS = 10_000
# Parentheses nested in a marker. Real markers nest two or three deep; packaging parses, prints
# and evaluates markers recursively, and a few hundred levels exhaust Python's stack.
MAX_MARKER_DEPTH = 32
# Extras on one requirement. Each extra is a node of its own in the resolution, and every round
# of it looks at every node: 1,500 extras on one line took minutes. Extras also count towards
# the requirement limit, so a request costs at most what that many plain requirements cost.
MAX_EXTRAS = 64
# Digits in a row (a version, a marker value): int() refuses more than 4,300, deep inside the
# resolver (a 500); no released version comes near this.
MAX_NUMBER_DIGITS = 64
_LONG_NUMBER = re.compile(rf"\d{{{MAX_NUMBER_DIGITS + 1},}}")


def canonical_json(value: object) -> bytes:
    """The one serialisation that digests are taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRequirement:
    """One requirement as the user wrote it, normalised, with where it came from.

    Equal by its normal form (`canonical`), the form the input digest is taken over: the line,
    the text as written and the source only say where it came from, for error messages.
    """

    requirement: Requirement = field(compare=False)
    line: int | None = field(compare=False)
    text: str = field(compare=False)
    source: str = field(default="requirements.in", compare=False)
    canonical: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical", _canonical_requirement(self.requirement))

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    def describe(self) -> str:
        """Where this requirement came from, for error messages: `requirements.in line 3`."""
        where = self.source if self.line is None else f"{self.source} line {self.line}"
        return f"{where} asks for {self.canonical}"

    def to_json(self) -> str:
        return self.canonical

    @classmethod
    def from_json(cls, data: str, *, source: str = "requirements.in") -> InputRequirement:
        """One requirement line, read as intake reads it (and refused as intake refuses it)."""
        parsed = parse_requirements(data, source=source)
        if len(parsed) != 1:
            raise InvalidRequirement(
                f"{source}: expected one requirement, found {len(parsed)}",
                context={"source": source, "text": data[:200]},
            )
        return parsed[0]


def _canonical_requirement(req: Requirement) -> str:
    extras = ""
    if req.extras:
        extras = "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    marker = f"; {req.marker}" if req.marker is not None else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}{marker}"


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

    def __post_init__(self) -> None:
        if self.as_of is not None:
            object.__setattr__(self, "as_of", _utc(self.as_of))

    def to_json(self) -> dict[str, Any]:
        return {
            "prereleases": self.prereleases,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockOptions:
        as_of = data.get("as_of")
        return cls(
            prereleases=bool(data.get("prereleases", False)),
            as_of=None if as_of is None else parse_as_of(as_of),
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
            requirements=parse_requirements("\n".join(data["requirements"])),
            constraints=parse_requirements("\n".join(data["constraints"]), source="constraints.txt"),
            target=Target.from_json(data["target"]),
            plan=IndexPlan.from_json(data["indexes"]),
            options=LockOptions.from_json(data["options"]),
            preferences=_preferences_from_json(data.get("preferences", {})),
        )


def _preferences_from_json(data: object) -> tuple[tuple[NormalizedName, Version], ...]:
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidRequest("preferences must map project names to versions", context={"field": "preferences"})
    try:
        return tuple((canonicalize_name(str(name)), Version(version)) for name, version in data.items())
    except InvalidVersion:
        raise InvalidRequest("preferences must map project names to versions", context={"field": "preferences"}) from None


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


def decode_body(body: bytes) -> str:
    """Requirements files are UTF-8 (a BOM is tolerated); anything else is a clear error."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"requirements are not valid UTF-8 (byte {exc.start})",
            context={"offset": exc.start},
        ) from None
    return text


def _strip_comment(line: str) -> str:
    """pip's rule: a comment starts at a `#` at the start of the line or after whitespace.

    A scan, not pip's regex `(^|\\s+)#.*$`: that one backtracks quadratically on a long run of
    whitespace, and a 1 MB line of spaces held the whole server (the GIL) for an hour.
    """
    start = 0
    while (found := line.find("#", start)) != -1:
        if found == 0 or line[found - 1].isspace():
            return line[:found].rstrip()
        start = found + 1
    return line


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, joined text) with comments stripped and `\\` continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _strip_comment(raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if joined:
            yield start, joined
    if pending:
        joined = " ".join(part.strip() for part in pending).strip()
        if joined:
            yield start, joined


def _refuse_unsupported(line: str, number: int, source: str) -> None:
    context = {"line": number, "text": line, "source": source}
    if line.startswith("-"):
        option = line.split(None, 1)[0].split("=", 1)[0]
        what = {
            "-r": "includes (-r)",
            "--requirement": "includes (-r)",
            "-c": "constraint files (-c): send constraints as their own field",
            "--constraint": "constraint files (-c): send constraints as their own field",
            "-e": "editable requirements (-e)",
            "--editable": "editable requirements (-e)",
        }.get(option, f"the option {option}: indexes and options are configuration, not input")
        raise UnsupportedRequirement(f"{source} line {number}: lockd does not accept {what}", context=context)
    if _VCS.match(line):
        raise UnsupportedRequirement(
            f"{source} line {number}: VCS references are not lockable", context=context
        )
    if _URL_SCHEMES.match(line) or " @ " in line or re.match(r"^[^;]*@\s*\S+://", line):
        raise UnsupportedRequirement(
            f"{source} line {number}: direct URL requirements are not lockable by name and hash",
            context=context,
        )
    first = line.split(";", 1)[0].strip()
    if first.startswith((".", "/", "~")) or "\\" in first or _ARCHIVE.search(first) or "/" in first:
        raise UnsupportedRequirement(f"{source} line {number}: local paths are not lockable", context=context)


def _marker_depth(line: str) -> int:
    """How deeply parentheses nest outside quoted strings (PEP 508 quotes with ' or ")."""
    depth = deepest = 0
    quote = ""
    for char in line:
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


def parse_requirements(
    text: str, *, source: str = "requirements.in", max_requirements: int | None = None
) -> tuple[InputRequirement, ...]:
    """Parse a requirements.in body. Errors name the source and the line."""
    if "\x00" in text:
        number = text[: text.index("\x00")].count("\n") + 1
        raise InvalidRequirement(
            f"{source} line {number}: NUL byte in requirements",
            context={"line": number, "source": source},
        )
    parsed: list[InputRequirement] = []
    counted = 0
    for number, line in _logical_lines(text):
        if len(line) > MAX_LINE_CHARS:
            raise InputTooLarge(
                f"{source} line {number} is longer than {MAX_LINE_CHARS} characters",
                context={"line": number, "limit": MAX_LINE_CHARS, "source": source},
            )
        _refuse_unsupported(line, number, source)
        shown = line if len(line) <= 200 else line[:200] + "…"
        if _LONG_NUMBER.search(line):
            raise InvalidRequirement(
                f"{source} line {number}: a number longer than {MAX_NUMBER_DIGITS} digits",
                context={"line": number, "text": shown, "source": source, "limit": MAX_NUMBER_DIGITS},
            )
        if _marker_depth(line) > MAX_MARKER_DEPTH:
            raise InvalidRequirement(
                f"{source} line {number}: the marker nests parentheses more than {MAX_MARKER_DEPTH} deep",
                hint="write the marker without redundant parentheses",
                context={"line": number, "text": shown, "source": source, "limit": MAX_MARKER_DEPTH},
            )
        try:
            requirement = Requirement(line)
        except PackagingInvalidRequirement as exc:
            raise InvalidRequirement(
                f"{source} line {number}: {shown!r} is not a valid requirement",
                hint=str(exc).splitlines()[0][:300],
                context={"line": number, "text": shown, "source": source},
            ) from None
        if requirement.url:
            raise UnsupportedRequirement(
                f"{source} line {number}: direct URL requirements are not lockable by name and hash",
                context={"line": number, "text": line, "source": source},
            )
        if len(requirement.extras) > MAX_EXTRAS:
            raise InvalidRequirement(
                f"{source} line {number}: more than {MAX_EXTRAS} extras",
                context={"line": number, "text": shown, "source": source, "limit": MAX_EXTRAS},
            )
        parsed.append(InputRequirement(requirement=requirement, line=number, text=line, source=source))
        counted += 1 + len(requirement.extras)
        if max_requirements is not None and counted > max_requirements:
            raise InputTooLarge(
                f"{source} has more than {max_requirements} requirements (each extra counts as one)",
                context={"limit": max_requirements, "source": source},
            )
    return tuple(parsed)
