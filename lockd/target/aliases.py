"""Other tools' names for lockd's platforms: uv's `--python-platform` and conda's subdirs.

They are aliases, read at intake only: a target is stored and digested under its canonical
platform name and level, however it was asked for. uv's triples carry a level
(`x86_64-manylinux_2_34` is glibc 2.34, `x86_64-unknown-linux-musl` musl 1.2); conda's subdirs
and the bare triples mean the platform's default level. uv's bare `linux`, `macos` and
`windows` name no architecture, so lockd does not take them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lockd.target.platforms import PLATFORMS, Level, Platform

__all__ = ["ALIAS_EXAMPLES", "platform_named"]

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}

# Names with no level of their own: conda subdirs and uv's triples at their default level.
_PLAIN: Mapping[str, str] = {
    "linux-64": "linux_x86_64",
    "linux-aarch64": "linux_aarch64",
    "osx-arm64": "macos_arm64",
    "osx-64": "macos_x86_64",
    "win-64": "windows_amd64",
    "win-arm64": "windows_arm64",
    "x86_64-unknown-linux-gnu": "linux_x86_64",
    "aarch64-unknown-linux-gnu": "linux_aarch64",
    "aarch64-apple-darwin": "macos_arm64",
    "x86_64-apple-darwin": "macos_x86_64",
    "x86_64-pc-windows-msvc": "windows_amd64",
    "aarch64-pc-windows-msvc": "windows_arm64",
    "arm64-pc-windows-msvc": "windows_arm64",
}

_UV_MANYLINUX = re.compile(r"^(x86_64|aarch64)-manylinux(?:_2_(\d+)|(2014))$")
_TAG_MANYLINUX = re.compile(r"^manylinux(?:_2_(\d+)|(2014))_(x86_64|aarch64)$")
_UV_MUSL = re.compile(r"^(x86_64|aarch64)-unknown-linux-musl$")
_TAG_MUSL = re.compile(r"^musllinux_1_(\d+)_(x86_64|aarch64)$")

ALIAS_EXAMPLES = ("x86_64-manylinux_2_34", "aarch64-apple-darwin", "x86_64-unknown-linux-musl", "linux-64")


def _glibc(arch: str, minor: str | None) -> tuple[Platform, Level]:
    # `manylinux2014` is glibc 2.17 (PEP 599)
    version = (2, int(minor) if minor is not None else 17)
    return PLATFORMS[f"linux_{_ARCH[arch]}"], Level(kind="glibc", version=version)


def _musl(arch: str, minor: str) -> tuple[Platform, Level]:
    return PLATFORMS[f"linux_{_ARCH[arch]}"], Level(kind="musl", version=(1, int(minor)))


def platform_named(name: str) -> tuple[Platform, Level | None] | None:
    """The platform (and the level, where the name has one) `name` stands for; None if unknown.

    The level is not checked against the platform's table here: `Target.of` checks it as it
    checks a `glibc=` value, so both say the same when it is out of range.
    """
    key = name.strip().lower()
    plain = key if key in PLATFORMS else _PLAIN.get(key)
    if plain is not None:
        return PLATFORMS[plain], None
    if match := _UV_MANYLINUX.match(key):
        return _glibc(match.group(1), match.group(2))
    if match := _TAG_MANYLINUX.match(key):
        return _glibc(match.group(3), match.group(1))
    if match := _UV_MUSL.match(key):
        return _musl(match.group(1), "2")  # uv's musl triples mean musllinux_1_2
    if match := _TAG_MUSL.match(key):
        return _musl(match.group(2), match.group(1))
    return None
