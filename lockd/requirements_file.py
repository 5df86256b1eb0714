"""A requirements file as pip reads it, to `InputRequirement`s: lines, comments, continuations, refusals.

pip's rules for comments (`#` at the start or after whitespace) and `\\` continuations; each
line parsed as PEP 508 and normalised (PEP 503 names, sorted extras). lockd locks names and
specifiers only: includes (`-r`, `-c`), editables, URLs, paths, VCS references and index
options are refused with `unsupported-requirement` (the CLI inlines `-r`/`-c` of local files
before the text gets here; the server cannot read a client's files). Every line costs one
scan and one parse, so a 5,000-line constraints file costs 5,000 times one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from lockd.errors import InputTooLarge, InvalidRequest, InvalidRequirement, UnsupportedRequirement

__all__ = ["MAX_LINE_CHARS", "MAX_MARKER_DEPTH", "InputRequirement", "decode_body", "parse_requirements"]

_URL_SCHEMES = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|zip)$", re.IGNORECASE)
# Far above any real requirement; a longer line would become an index URL no server accepts.
MAX_LINE_CHARS = 10_000
# Parentheses nested in a marker. Real markers nest two or three deep; packaging parses, prints
# and evaluates markers recursively, and a few hundred levels exhaust Python's stack.
MAX_MARKER_DEPTH = 32


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


# The server cannot read a client's files: say how to send what an include line names.
_CONSTRAINTS_HINT = (
    "send the constraints file's lines as `constraints` in POST /v1/locks (JSON; constraints have a larger limit), "
    "or run `lockd lock requirements.in`, which reads -r and -c files itself"
)
_INCLUDE_HINTS = {
    "-c": _CONSTRAINTS_HINT,
    "--constraint": _CONSTRAINTS_HINT,
    "-r": "send the included file's lines in this body, or run `lockd lock`, which reads -r files itself",
    "--requirement": "send the included file's lines in this body, or run `lockd lock`, which reads -r files itself",
}


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
        hint = _INCLUDE_HINTS.get(option)
        raise UnsupportedRequirement(
            f"{source} line {number}: lockd does not accept {what}", hint=hint, context=context
        )
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
    for number, line in _logical_lines(text):
        if len(line) > MAX_LINE_CHARS:
            raise InputTooLarge(
                f"{source} line {number} is longer than {MAX_LINE_CHARS} characters",
                context={"line": number, "limit": MAX_LINE_CHARS, "source": source},
            )
        _refuse_unsupported(line, number, source)
        shown = line if len(line) <= 200 else line[:200] + "…"
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
        parsed.append(InputRequirement(requirement=requirement, line=number, text=line, source=source))
        if max_requirements is not None and len(parsed) > max_requirements:
            raise InputTooLarge(
                f"{source} has more than {max_requirements} requirements",
                context={"limit": max_requirements, "source": source},
            )
    return tuple(parsed)
