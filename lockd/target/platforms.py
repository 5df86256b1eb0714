"""The platform table: each OS and architecture lockd locks for, and the levels it comes in.

A `Platform` holds the PEP 508 marker values of its machines and which libc or OS level they
may run: Linux with a glibc level (PEP 600 `manylinux_2_NN`, 2.17 to 2.41, default 2.28) or a
musl level (PEP 656 `musllinux_1_N`); macOS with a minimum version (default 13.0, the oldest
Apple still supports, as uv assumes); Windows with none. `Platform.platform_tags_at(level)` is
the best-first list of platform tags pip accepts on such a machine. Which accelerator
variants a platform has comes from the accelerator table, never from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from packaging.tags import mac_platforms

from lockd.accelerator import AcceleratorKind, OsFamily, current_table
from lockd.errors import InvalidTarget

__all__ = ["LEVEL_KINDS", "PLATFORMS", "Level", "LevelKind", "LevelRange", "Platform"]

LevelKind = Literal["glibc", "musl", "macos"]
LEVEL_KINDS: tuple[LevelKind, ...] = ("glibc", "musl", "macos")


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Level:
    """A libc or OS level: glibc 2.28, musl 1.2, macOS 14.0."""

    kind: LevelKind
    version: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def describe(self) -> str:
        return {"glibc": "glibc", "musl": "musl", "macos": "macOS"}[self.kind] + f" {self}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelRange:
    """The levels of one kind a platform's machines run, oldest first, and the default."""

    kind: LevelKind
    accepted: tuple[tuple[int, int], ...]
    default: tuple[int, int] | None  # None: the kind must be asked for (musl)

    @property
    def newest(self) -> Level:
        return Level(kind=self.kind, version=self.accepted[-1])

    def accepted_text(self) -> list[str]:
        return [f"{major}.{minor}" for major, minor in self.accepted]

    def parse(self, text: str, platform: str) -> Level:
        """The level `text` names (`2.34`; macOS `14`, `14.2` → 14.0), or `InvalidTarget`."""
        parts = text.strip().split(".")
        context = {
            "field": self.kind,
            "value": text[:100],
            "platform": platform,
            "accepted": self.accepted_text(),
        }
        if not 1 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
            raise InvalidTarget(f"invalid {self.kind} level {text!r}", hint=self._hint(), context=context)
        numbers = [int(part) for part in parts] + [0]
        version = (numbers[0], numbers[1])
        if self.kind == "macos" and version[0] >= 11:
            version = (version[0], 0)  # from macOS 11 a wheel's tag names the major release only
        if version not in self.accepted:
            raise InvalidTarget(
                f"{self.kind} {text} is not a level lockd knows for {platform}",
                hint=self._hint(),
                context=context,
            )
        return Level(kind=self.kind, version=version)

    def _hint(self) -> str:
        return f"{self.kind}= takes one of: " + ", ".join(self.accepted_text())


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """One named platform: its marker values, its levels and how its wheel tags are spelled."""

    name: str
    os_family: OsFamily
    arch: str  # as in wheel tags: x86_64, aarch64, arm64, amd64
    os_name: str
    sys_platform: str
    platform_system: str
    platform_machine: str
    conda_platform: str
    levels: tuple[LevelRange, ...]  # the default kind first; none on Windows

    @property
    def default_level(self) -> Level | None:
        for levels in self.levels:
            if levels.default is not None:
                return Level(kind=levels.kind, version=levels.default)
        return None

    def level_range(self, kind: LevelKind) -> LevelRange | None:
        for levels in self.levels:
            if levels.kind == kind:
                return levels
        return None

    def newest_level(self, level: Level | None) -> Level | None:
        """The newest level of `level`'s kind: the newest machine a lock at `level` may meet."""
        if level is None:
            return None
        levels = self.level_range(level.kind)
        return None if levels is None else levels.newest

    def platform_tags_at(self, level: Level | None) -> tuple[str, ...]:
        """The platform tags pip accepts on a machine at `level`, best first."""
        if level is None:
            return (f"win_{self.arch}",)
        if level.kind == "glibc":
            return _manylinux_tags(self.arch, level.version[1])
        if level.kind == "musl":
            return (
                f"linux_{self.arch}",
                *(f"musllinux_1_{m}_{self.arch}" for m in range(level.version[1], -1, -1)),
            )
        return tuple(mac_platforms(level.version, self.arch))

    def uv_platform_at(self, level: Level | None) -> str | None:
        """uv's `--python-platform` name for a machine at `level`; None where uv has none."""
        arch = _UV_ARCH[self.arch]
        if self.os_family == "windows":
            return f"{arch}-pc-windows-msvc"
        if self.os_family == "macos":
            return f"{arch}-apple-darwin"  # the level goes in MACOSX_DEPLOYMENT_TARGET
        if level is not None and level.kind == "musl":
            return f"{arch}-unknown-linux-musl" if level.version == (1, 2) else None
        minor = 28 if level is None else level.version[1]
        return f"{arch}-manylinux_2_{minor}" if minor in _UV_MANYLINUX else None

    @property
    def uv_platform(self) -> str:
        """uv's `--python-platform` name at the default level."""
        name = self.uv_platform_at(self.default_level)
        assert name is not None  # every default level has a uv name
        return name

    @property
    def platform_tags(self) -> tuple[str, ...]:
        """The platform tags at the default level."""
        return self.platform_tags_at(self.default_level)

    @property
    def accelerators(self) -> frozenset[AcceleratorKind]:
        """The kinds of PyTorch build the accelerator table has for this platform."""
        return frozenset(v.kind for v in current_table().variants.values() if self.name in v.platforms)

    @property
    def labelled_accelerators(self) -> frozenset[AcceleratorKind]:
        """The kinds whose builds here carry the variant's local label (+cu124)."""
        return frozenset(v.kind for v in current_table().variants.values() if self.name in v.labelled)


def _manylinux_tags(arch: str, glibc_minor: int) -> tuple[str, ...]:
    # pip (packaging >= 26) puts the plain `linux_<arch>` tag first, as the most specific (the
    # PyTorch index uses it), then manylinux from the newest glibc down, each legacy alias right
    # after its PEP 600 twin.
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags: list[str] = [f"linux_{arch}"]
    for minor in range(glibc_minor, 4, -1):
        if arch == "aarch64" and minor < 17:
            break  # aarch64 manylinux starts at glibc 2.17
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy and not (arch == "aarch64" and minor != 17):
            tags.append(f"{legacy[minor]}_{arch}")
    return tuple(tags)


_UV_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64", "amd64": "x86_64"}
_UV_MANYLINUX = frozenset({17, 28, *range(31, 41)})  # the glibc levels uv 0.9 names

_GLIBC = LevelRange(kind="glibc", accepted=tuple((2, minor) for minor in range(17, 42)), default=(2, 28))
_MUSL = LevelRange(kind="musl", accepted=((1, 1), (1, 2)), default=None)
# macOS releases: 10.9 to 10.15, then one major a year, 11 to 15, then 26 (the year's number).
_MACOS_MODERN = ((11, 0), (12, 0), (13, 0), (14, 0), (15, 0), (26, 0))
_MACOS_ARM64 = LevelRange(kind="macos", accepted=_MACOS_MODERN, default=(13, 0))
_MACOS_X86_64 = LevelRange(
    kind="macos", accepted=tuple((10, minor) for minor in range(9, 16)) + _MACOS_MODERN, default=(13, 0)
)


def _linux(arch: str, conda: str) -> Platform:
    return Platform(
        name=f"linux_{arch}",
        os_family="linux",
        arch=arch,
        os_name="posix",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine=arch,
        conda_platform=conda,
        levels=(_GLIBC, _MUSL),
    )


def _macos(arch: str, conda: str, levels: LevelRange) -> Platform:
    return Platform(
        name=f"macos_{arch}",
        os_family="macos",
        arch=arch,
        os_name="posix",
        sys_platform="darwin",
        platform_system="Darwin",
        platform_machine=arch,
        conda_platform=conda,
        levels=(levels,),
    )


def _windows(arch: str, machine: str, conda: str) -> Platform:
    return Platform(
        name=f"windows_{arch}",
        os_family="windows",
        arch=arch,
        os_name="nt",
        sys_platform="win32",
        platform_system="Windows",
        platform_machine=machine,
        conda_platform=conda,
        levels=(),
    )


PLATFORMS: Mapping[str, Platform] = {
    p.name: p
    for p in (
        _linux("x86_64", "linux-64"),
        _linux("aarch64", "linux-aarch64"),
        _macos("arm64", "osx-arm64", _MACOS_ARM64),
        _macos("x86_64", "osx-64", _MACOS_X86_64),
        _windows("amd64", "AMD64", "win-64"),
        _windows("arm64", "ARM64", "win-arm64"),
    )
}
