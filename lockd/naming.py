"""Lock names and the name patterns a token may be limited to: what is valid, what matches.

A lock name is one or more `/`-separated segments of `[a-z0-9][a-z0-9._-]*` (at most 200
characters), so teams can namespace their locks (`vision/trainer-cu128`). The last segment may
not be a word the name routes use after a name (`history`, `status`, `proposals`, a served
file name…), so `/v1/names/{name}/status` can never mean a lock called `…/status`.

A token may be limited to name patterns: `vision/*` (every name under `vision/`), `vision*`
(every name starting so) or an exact name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lockd.errors import InvalidRequest

__all__ = [
    "MAX_NAME_CHARS",
    "NAME_SEGMENT",
    "RESERVED_SEGMENTS",
    "InvalidName",
    "name_allowed",
    "parse_lock_name",
    "parse_name_patterns",
]

MAX_NAME_CHARS = 200
NAME_SEGMENT = r"[a-z0-9][a-z0-9._-]*"
_NAME = re.compile(rf"{NAME_SEGMENT}(?:/{NAME_SEGMENT})*")
_PATTERN = re.compile(rf"{NAME_SEGMENT}(?:/{NAME_SEGMENT})*(?:/?\*)?")
# Words that follow a name in the routes of `lockd.http.names`, and the served file names.
RESERVED_SEGMENTS = frozenset(
    {
        "archive",
        "history",
        "policy",
        "proposals",
        "refresh",
        "status",
        "requirements.txt",
        "pylock.toml",
        "conda-lock.yml",
        "lock.json",
        "cyclonedx.json",
    }
)


class InvalidName(InvalidRequest):
    """A lock name or a token's name pattern that is not valid."""

    code = "invalid-name"
    status = 422
    title = "Invalid lock name"


def parse_lock_name(text: str) -> str:
    """`text` if it is a valid lock name, else `InvalidRequest` (422) saying what is wrong."""
    hint = "use lowercase letters, digits, '.', '_', '-' and '/' between segments, e.g. vision/trainer-cu128"
    context = {"field": "name", "value": text[:MAX_NAME_CHARS]}
    if len(text) > MAX_NAME_CHARS:
        raise _invalid(f"a lock name is at most {MAX_NAME_CHARS} characters", hint, context)
    if not _NAME.fullmatch(text):
        raise _invalid(f"{text[:MAX_NAME_CHARS]!r} is not a valid lock name", hint, context)
    last = text.rsplit("/", 1)[-1]
    if last in RESERVED_SEGMENTS:
        raise _invalid(
            f"a lock name may not end in {last!r}: the API uses that word after names", hint, context
        )
    return text


def parse_name_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Token name patterns, checked and sorted: `vision/*`, `vision*` or an exact name."""
    found: set[str] = set()
    for pattern in patterns:
        text = pattern.strip()
        if not text:
            continue
        if len(text) > MAX_NAME_CHARS or not _PATTERN.fullmatch(text):
            raise _invalid(
                f"{text[:MAX_NAME_CHARS]!r} is not a name pattern",
                "give a name, a name followed by /* (everything under it) or a prefix followed by *",
                {"field": "name_prefixes", "value": text[:MAX_NAME_CHARS]},
            )
        found.add(text)
    return tuple(sorted(found))


def name_allowed(patterns: Iterable[str] | None, name: str) -> bool:
    """Whether a token limited to `patterns` (None: not limited) may act on `name`."""
    if patterns is None:
        return True
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def _invalid(message: str, hint: str, context: dict[str, str]) -> InvalidName:
    return InvalidName(message, hint=hint, context=context)
