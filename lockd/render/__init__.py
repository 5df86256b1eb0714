"""`Lock` → the files lockd serves, and the one table of those formats.

Pure functions, no I/O: `render(lock, fmt)` gives the bytes that are stored once and served
byte-identical forever. `FORMATS` is the one place a format is described (its name, the file
it is served as, its media types, its renderer): the CLI's `--format`, the HTTP routes, their
content negotiation and the API models all derive from it.

The `json` format is `Lock.canonical_bytes()` exactly (compact, sorted keys, no trailing
newline), so the sha256 of that file *is* the lock digest a client can check it against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockd.errors import InvalidRequest

if TYPE_CHECKING:
    from lockd.lock import Lock

__all__ = [
    "CYCLONEDX_MEDIA_TYPE",
    "DEFAULT_FORMAT",
    "FILE_NAMES",
    "FORMATS",
    "FORMATS_BY_FILE_NAME",
    "Format",
    "media_type",
    "render",
]

# CycloneDX's registered type, with the spec version `lockd.render.cyclonedx` writes.
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json; version=1.6"


@dataclass(frozen=True, slots=True, kw_only=True)
class Format:
    """One output format and everything that names it."""

    name: str  # what `format=` and `--format` take
    file_name: str  # the file it is served as, under /v1/locks/{digest}/ and /v1/blobs/{digest}/
    media_type: str  # its Content-Type
    also_accepted: tuple[str, ...] = ()  # other media types an Accept header selects it by
    renderer: Callable[[Lock], bytes]
    # Rendered and stored with the lock; otherwise rendered when first asked for, then stored
    # (`lockd.lock_reads`): the costly formats of a big lock (pylock.toml ~20 ms of 300 pins,
    # conda-lock.yml and the SBOM ~40 ms) stay out of the request that locks, and are the same
    # bytes whenever rendered. What pip installs from (requirements.txt) and the lock itself
    # (lock.json) are stored with it.
    eager: bool = True

    @property
    def accepted_media_types(self) -> tuple[str, ...]:
        """The media types (without parameters) an Accept header selects this format by."""
        return (self.media_type.split(";", 1)[0].strip(), *self.also_accepted)


# Each renderer is imported when its format is first rendered: the table alone (names, file
# names, media types) is what `lockd lock --help`, argument parsing and the HTTP routes need,
# and `lockd lock` asks the index before it renders anything.
def _requirements_txt(lock: Lock) -> bytes:
    from lockd.render.requirements_txt import render_requirements_txt  # noqa: PLC0415

    return render_requirements_txt(lock).encode("utf-8")


def _pylock_toml(lock: Lock) -> bytes:
    from lockd.render.pylock import render_pylock_toml  # noqa: PLC0415

    return render_pylock_toml(lock).encode("utf-8")


def _conda_lock_yml(lock: Lock) -> bytes:
    from lockd.render.conda_lock import render_conda_lock_yml  # noqa: PLC0415

    return render_conda_lock_yml(lock).encode("utf-8")


def _cyclonedx(lock: Lock) -> bytes:
    from lockd.render.cyclonedx import render_cyclonedx  # noqa: PLC0415

    return render_cyclonedx(lock)


def _canonical_json(lock: Lock) -> bytes:
    return lock.canonical_bytes()


FORMATS: Mapping[str, Format] = {
    f.name: f
    for f in (
        # What pip reads; text/plain shows in a browser. First, so the default.
        Format(
            name="requirements.txt",
            file_name="requirements.txt",
            media_type="text/plain; charset=utf-8",
            renderer=_requirements_txt,
        ),
        # The IANA-registered TOML type.
        Format(
            name="pylock.toml",
            file_name="pylock.toml",
            media_type="application/toml",
            renderer=_pylock_toml,
            eager=False,
        ),
        # RFC 9512; clients still send the types that were in use before it.
        Format(
            name="conda-lock.yml",
            file_name="conda-lock.yml",
            media_type="application/yaml",
            also_accepted=("application/x-yaml", "text/yaml"),
            renderer=_conda_lock_yml,
            eager=False,
        ),
        Format(name="json", file_name="lock.json", media_type="application/json", renderer=_canonical_json),
        # CycloneDX 1.6 (the SBOM security teams ask for); its registered type, version parameter
        # and all. Rendered on first read, as for locks stored before it was added.
        Format(
            name="cyclonedx.json",
            file_name="cyclonedx.json",
            media_type=CYCLONEDX_MEDIA_TYPE,
            renderer=_cyclonedx,
            eager=False,
        ),
    )
}
DEFAULT_FORMAT: str = next(iter(FORMATS))
FILE_NAMES: tuple[str, ...] = tuple(f.file_name for f in FORMATS.values())
FORMATS_BY_FILE_NAME: Mapping[str, Format] = {f.file_name: f for f in FORMATS.values()}


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
