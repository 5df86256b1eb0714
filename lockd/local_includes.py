"""`-r` and `-c` lines of local requirements files, inlined for `lockd lock` as pip reads them.

pip follows `-r other.txt` (more requirements) and `-c constraints.txt` (constraints only),
relative to the file that names them. The server cannot read a client's files, so it keeps
refusing both; the CLI reads them here and sends requirements and constraints as the two
texts intake takes. A `-r` inside a constraints file is more constraints, as in pip. Included
lines are appended after the including file's own, so line numbers of the top file stay
right in error messages. Cycles and nesting past `MAX_DEPTH` are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lockd.errors import LockdError, UnsupportedRequirement
from lockd.requirements_file import decode_body

__all__ = ["MAX_DEPTH", "InlinedInput", "inline_includes"]

MAX_DEPTH = 16
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=\S))(\S+)\s*$")


@dataclass(slots=True)
class InlinedInput:
    """Requirements and constraints text with every local include read in."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)

    def text(self, constraints: bool) -> str:
        lines = self.constraints if constraints else self.requirements
        return "".join(line + "\n" for line in lines)


def inline_includes(path: Path, *, constraints: bool = False, text: str | None = None) -> InlinedInput:
    """The file at `path` (or `text`, read as if it were there) with its `-r`/`-c` lines inlined."""
    found = InlinedInput()
    _inline(path, found, constraints=constraints, text=text, stack=())
    return found


def _inline(
    path: Path, found: InlinedInput, *, constraints: bool, text: str | None, stack: tuple[Path, ...]
) -> None:
    resolved = path.resolve()
    if resolved in stack:
        chain = " → ".join(str(p) for p in (*stack, resolved))
        raise UnsupportedRequirement(f"{path}: includes itself ({chain})", context={"file": str(path)})
    if len(stack) >= MAX_DEPTH:
        raise UnsupportedRequirement(
            f"{path}: includes nest more than {MAX_DEPTH} deep", context={"file": str(path)}
        )
    body = _read(path) if text is None else text
    target = found.constraints if constraints else found.requirements
    if stack:
        target.append(f"# {path}")  # a comment: intake skips it
    later: list[tuple[Path, bool]] = []
    for line in body.splitlines():
        match = _INCLUDE.match(line.strip())
        if match is None:
            target.append(line)
            continue
        target.append("")  # keeps the line numbers of this file
        option, name = match.groups()
        if "://" in name:
            raise UnsupportedRequirement(
                f"{path}: {option} {name}: lockd inlines local files only",
                hint="download the file and name its local path",
                context={"file": str(path), "include": name},
            )
        included = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        later.append((included, constraints or option in ("-c", "--constraint")))
    for included, as_constraints in later:
        _inline(included, found, constraints=as_constraints, text=None, stack=(*stack, resolved))


def _read(path: Path) -> str:
    try:
        return decode_body(path.read_bytes())
    except OSError as exc:
        raise LockdError(f"cannot read {path}: {exc.strerror}") from None
