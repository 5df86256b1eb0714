"""`Lock` → the files lockd serves: requirements.txt, pylock.toml, conda-lock.yml and JSON.

Pure functions, no I/O: `render(lock, fmt)` gives the bytes that are stored once and served
byte-identical forever. Media types:

| format             | media type                  | why |
|--------------------|-----------------------------|-----|
| `requirements.txt` | `text/plain; charset=utf-8` | what pip reads; shows in a browser |
| `pylock.toml`      | `application/toml`          | the IANA-registered TOML type |
| `conda-lock.yml`   | `application/yaml`          | RFC 9512 |
| `json`             | `application/json`          | |

The `json` format is `Lock.canonical_bytes()` exactly (compact, sorted keys, no trailing
newline), so the sha256 of that file *is* the lock digest a client can check it against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lockd.errors import InvalidRequest
from lockd.lock import Lock
from lockd.render.conda_lock import render_conda_lock_yml
from lockd.render.pylock import render_pylock_toml
from lockd.render.requirements_txt import render_requirements_txt

__all__ = [
    "FORMATS",
    "Format",
    "media_type",
    "render",
    "render_conda_lock_yml",
    "render_pylock_toml",
    "render_requirements_txt",
]


@dataclass(frozen=True, slots=True)
class Format:
    """One output format: its name (also the served file name), media type and renderer."""

    name: str
    media_type: str
    renderer: Callable[[Lock], bytes]


def _utf8(render_text: Callable[[Lock], str]) -> Callable[[Lock], bytes]:
    def render_bytes(lock: Lock) -> bytes:
        return render_text(lock).encode("utf-8")

    return render_bytes


def _canonical_json(lock: Lock) -> bytes:
    return lock.canonical_bytes()


FORMATS: Mapping[str, Format] = {
    f.name: f
    for f in (
        Format("requirements.txt", "text/plain; charset=utf-8", _utf8(render_requirements_txt)),
        Format("pylock.toml", "application/toml", _utf8(render_pylock_toml)),
        Format("conda-lock.yml", "application/yaml", _utf8(render_conda_lock_yml)),
        Format("json", "application/json", _canonical_json),
    )
}


def _format(fmt: str) -> Format:
    spec = FORMATS.get(fmt)
    if spec is None:
        raise InvalidRequest(
            f"unknown lock format {fmt!r}",
            hint="use one of: " + ", ".join(FORMATS),
            context={"field": "format", "value": fmt, "valid": list(FORMATS)},
        )
    return spec


def media_type(fmt: str) -> str:
    return _format(fmt).media_type


def render(lock: Lock, fmt: str) -> bytes:
    """The bytes of `lock` in format `fmt`; `InvalidRequest` names the valid formats."""
    return _format(fmt).renderer(lock)
