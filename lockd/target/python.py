"""The target's Python: a CPython version in the supported range, free-threaded or not.

`3.11` means 3.11.0, the conservative choice uv makes, so a lock installs on every 3.11.x;
`3.11.7` is taken as given. A `t` suffix (`3.14t`) is the free-threaded build of PEP 703,
whose wheels carry the `cp314t` ABI tag; it exists from 3.13. The supported range lives here
and nowhere else.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from lockd.errors import InvalidTarget
from lockd.limits import PYTHON_CHARS

__all__ = [
    "FREE_THREADED_MIN",
    "PYTHON_MAX",
    "PYTHON_MIN",
    "parse_interpreter",
    "parse_python",
    "python_text",
    "supported_minors",
]

PYTHON_MIN = (3, 9)
PYTHON_MAX = (3, 15)
FREE_THREADED_MIN = (3, 13)  # the first CPython with a free-threaded build (PEP 703)


def supported_minors() -> list[tuple[int, int]]:
    """Every supported (major, minor), oldest first."""
    return [(PYTHON_MIN[0], minor) for minor in range(PYTHON_MIN[1], PYTHON_MAX[1] + 1)]


def _accepted() -> list[str]:
    plain = [f"{major}.{minor}" for major, minor in supported_minors()]
    threaded = [
        f"{major}.{minor}t" for major, minor in supported_minors() if (major, minor) >= FREE_THREADED_MIN
    ]
    return plain + threaded


def parse_interpreter(text: str) -> tuple[Version, bool]:
    """(version, free-threaded) of `3.11`, `3.11.7`, `3.14t` or `3.14.1t`.

    At most `PYTHON_CHARS` characters, as given and as stored: a longer one would resolve and
    then be refused by the store (and a number past 4,300 digits is not even an int).
    """
    stripped = text.strip()
    if len(stripped) > PYTHON_CHARS:
        raise _too_long(text)
    threaded = stripped.lower().endswith("t")
    number = stripped[:-1] if threaded else stripped
    context = {"field": "python", "value": text[:100]}
    try:
        version = Version(number)
    except InvalidVersion:
        raise InvalidTarget(f"invalid Python version {text!r}", hint=_hint(), context=context) from None
    release = version.release
    if version.is_prerelease or version.is_postrelease or version.local or version.epoch or len(release) > 3:
        raise InvalidTarget(f"invalid Python version {text!r}", hint=_hint(), context=context)
    if len(release) < 2 or not PYTHON_MIN <= release[:2] <= PYTHON_MAX:
        raise InvalidTarget(
            f"Python {text} is not supported",
            hint=f"supported: {PYTHON_MIN[0]}.{PYTHON_MIN[1]} to {PYTHON_MAX[0]}.{PYTHON_MAX[1]}",
            context={**context, "accepted": _accepted()},
        )
    if threaded and release[:2] < FREE_THREADED_MIN:
        raise InvalidTarget(
            f"Python {release[0]}.{release[1]} has no free-threaded build",
            hint=f"free-threaded builds (the t suffix) exist from {FREE_THREADED_MIN[0]}.{FREE_THREADED_MIN[1]}",
            context={**context, "accepted": _accepted()},
        )
    normal = Version(".".join(str(part) for part in (*release, 0, 0)[:3]))
    if len(python_text(normal, threaded)) > PYTHON_CHARS:
        raise _too_long(text)
    return normal, threaded


def _too_long(text: str) -> InvalidTarget:
    shown = text.strip()[:PYTHON_CHARS] + "…"
    return InvalidTarget(
        f"Python version {shown!r} is longer than {PYTHON_CHARS} characters",
        context={"field": "python", "value": shown, "limit": PYTHON_CHARS},
    )


def parse_python(text: str) -> Version:
    """`3.11` means 3.11.0 (installs on every 3.11.x); `3.11.7` is taken as given."""
    version, threaded = parse_interpreter(text)
    if threaded:
        raise InvalidTarget(
            f"{text!r} is a free-threaded Python; a version alone is expected here",
            context={"field": "python", "value": text[:100]},
        )
    return version


def python_text(version: Version, free_threaded: bool) -> str:
    """The canonical spelling: `3.11.0`, `3.14.0t`."""
    return f"{version}t" if free_threaded else str(version)


def _hint() -> str:
    return "give a CPython version such as 3.12, 3.11.7 or 3.14t (free-threaded)"
