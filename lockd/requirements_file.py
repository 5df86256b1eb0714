"""A requirements file as pip reads it, to `InputRequirement`s: lines, comments, continuations, refusals.

pip's rules for comments (`#` at the start or after whitespace) and `\\` continuations; each
line parsed as PEP 508 and normalised (PEP 503 names, sorted extras). lockd locks names and
specifiers, plus wheels by https URL from hosts the operator allows (`LOCKD_URL_HOSTS`):
includes (`-r`, `-c`), editables, other URLs, paths, VCS references and index options are refused with `unsupported-requirement` (the CLI inlines `-r`/`-c` of local files
before the text gets here; the server cannot read a client's files). Every line costs one
scan and one parse, so a 5,000-line constraints file costs 5,000 times one line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from lockd.errors import InputTooLarge, InvalidRequest, InvalidRequirement, UnsupportedRequirement
from lockd.index_text import marker_depth

__all__ = [
    "MAX_EXTRAS",
    "MAX_LINE_CHARS",
    "MAX_MARKER_DEPTH",
    "MAX_NUMBER_DIGITS",
    "InputRequirement",
    "UrlHosts",
    "decode_body",
    "parse_requirements",
]

# The hosts direct wheel URLs may name, or "any" for an input intake already checked.
UrlHosts = Collection[str] | Literal["any"]

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
        parsed = parse_requirements(data, source=source, url_hosts="any")
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
    if req.url:
        # PEP 508: a space before the `;` of a marker, or it would read as part of the URL.
        return f"{canonicalize_name(req.name)}{extras} @ {req.url}{' ' + marker if marker else ''}"
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
    if _URL_SCHEMES.match(line):
        raise UnsupportedRequirement(
            f"{source} line {number}: direct URL requirements need a name: `name @ https://host/file.whl`",
            context=context,
        )
    if " @ " in line or re.match(r"^[^;]*@\s*\S+://", line):
        return  # `name @ URL`: `_check_direct_url` decides once the line is parsed
    first = line.split(";", 1)[0].strip()
    if first.startswith((".", "/", "~")) or "\\" in first or _ARCHIVE.search(first) or "/" in first:
        raise UnsupportedRequirement(f"{source} line {number}: local paths are not lockable", context=context)


def _check_direct_url(
    requirement: Requirement, line: str, number: int, source: str, url_hosts: UrlHosts
) -> None:
    """`name @ https://host/file.whl[#sha256=…]` from an allowed host; everything else refused, saying why."""
    context = {"line": number, "text": line[:200], "source": source}
    url = requirement.url or ""
    parts = urlsplit(url)
    hint = (
        "lockd locks wheels by URL only from hosts the operator allows (LOCKD_URL_HOSTS); "
        "otherwise publish the wheel on an index lockd reads and require it by name"
    )
    # A bare host allows https from it; `http://host:port` (an internal mirror) allows exactly that origin.
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problem = "direct URL requirements are lockable only as https:// wheel URLs"
    elif not parts.path.endswith(".whl"):
        problem = "direct URL requirements are lockable only for wheels (.whl): an sdist would need a build"
    elif url_hosts != "any" and not (
        (parts.scheme == "https" and parts.hostname.lower() in url_hosts) or origin in url_hosts
    ):
        problem = f"{parts.hostname} is not a host this server takes wheels from"
        problem = f"direct URL requirements are taken only from allowed hosts, and {problem}"
    elif parts.fragment and not re.fullmatch(r"sha256=[0-9a-fA-F]{64}", parts.fragment):
        problem = "direct URL requirements take one fragment, #sha256=<64 hex digits>"
    elif parts.username or parts.password:
        problem = "direct URL requirements may not carry credentials: they would be written into the lock"
    else:
        return
    raise UnsupportedRequirement(f"{source} line {number}: {problem}", hint=hint, context=context)


# Lines parsed before, by their text: at most this many, each at most this long (a typical
# requirement line is under 60 characters; a longer one is parsed each time), so what is kept
# stays within a few MB whatever inputs are sent.
_KEPT_LINES = 4096
_KEPT_LINE_CHARS = 200


_kept_requirement = lru_cache(maxsize=_KEPT_LINES)(Requirement)


def _requirement(line: str) -> Requirement:
    """`Requirement(line)`, kept by the line's text and shared by every input that has the line.

    A CI job posts its requirements.in again with a line or two changed. The resolver keeps what
    it works out for a requirement by the identity of its specifier set (`Finder.matching`), so a
    line parsed into the same object finds that again: fully cached pypi-300 made 151 new
    combinations a resolution, 126 of them for the input's own lines. lockd never changes a
    parsed `Requirement`. A line that fails to parse raises again every time (nothing is kept).
    """
    return _kept_requirement(line) if len(line) <= _KEPT_LINE_CHARS else Requirement(line)


def parse_requirements(
    text: str,
    *,
    source: str = "requirements.in",
    max_requirements: int | None = None,
    url_hosts: UrlHosts = frozenset(),
) -> tuple[InputRequirement, ...]:
    """Parse a requirements.in body. Errors name the source and the line.

    `url_hosts`: the hosts `name @ https://…/file.whl` may name; "any" when reading back a
    stored input, which intake already checked.
    """
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
        if marker_depth(line) > MAX_MARKER_DEPTH:
            raise InvalidRequirement(
                f"{source} line {number}: the marker nests parentheses more than {MAX_MARKER_DEPTH} deep",
                hint="write the marker without redundant parentheses",
                context={"line": number, "text": shown, "source": source, "limit": MAX_MARKER_DEPTH},
            )
        try:
            requirement = _requirement(line)
        except PackagingInvalidRequirement as exc:
            raise InvalidRequirement(
                f"{source} line {number}: {shown!r} is not a valid requirement",
                hint=str(exc).splitlines()[0][:300],
                context={"line": number, "text": shown, "source": source},
            ) from None
        if requirement.url:
            _check_direct_url(requirement, line, number, source, url_hosts)
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
