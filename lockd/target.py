"""What a target *is*: the machine a lock will be installed on.

A `Target` is a named platform from a closed table, a Python version and an optional
accelerator variant. From it come the complete PEP 508 marker environment and the
best-first list of PEP 425 / PEP 600 wheel tags that pip would compute *on that machine*.
`Target.to_json` is the canonical form that enters the input digest and `Target.from_json`
its exact inverse. Nothing here reads the host: `packaging.tags.sys_tags()` and
`packaging.markers.default_environment()` are banned outside tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.version import InvalidVersion, Version

from lockd.accelerator import Accelerator, AcceleratorKind, parse_variant
from lockd.errors import InvalidTarget
from lockd.limits import PYTHON_CHARS

__all__ = [
    "PLATFORMS",
    "PYTHON_MAX",
    "PYTHON_MIN",
    "Platform",
    "Target",
    "lockable_anywhere",
    "parse_python",
    "target_from_spec",
]

PYTHON_MIN = (3, 9)
PYTHON_MAX = (3, 13)


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """One named platform: its marker values, wheel tags and PyTorch builds.

    `platform_tags` are the tags pip would accept there; `accelerators` and
    `labelled_accelerators` say which kinds of PyTorch build exist for it and which of them
    carry the variant's local version label.
    """

    name: str
    os_name: str
    sys_platform: str
    platform_system: str
    platform_machine: str
    conda_platform: str
    uv_platform: str
    platform_tags: tuple[str, ...]
    accelerators: frozenset[AcceleratorKind]  # the kinds of variant that exist for this platform
    # The kinds whose torch builds here always carry the variant's local label (+cu124); others
    # may carry none (cpu builds, CUDA builds for aarch64).
    labelled_accelerators: frozenset[AcceleratorKind]


def _manylinux_tags(arch: str, glibc_minor: int) -> tuple[str, ...]:
    # pip (packaging >= 26) puts the plain `linux_<arch>` tag first, as the most specific (the
    # PyTorch index uses it), then manylinux from the newest glibc down, each legacy alias right
    # after its PEP 600 twin. musllinux never applies: the named Linux platforms are glibc.
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags: list[str] = [f"linux_{arch}"]
    for minor in range(glibc_minor, 4, -1):
        if arch == "aarch64" and minor < 17:
            break  # aarch64 manylinux starts at glibc 2.17
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy and not (arch == "aarch64" and minor != 17):
            tags.append(f"{legacy[minor]}_{arch}")
    return tuple(tags)


_MACOS_VERSION = (13, 0)  # the oldest macOS still supported: the conservative choice uv makes

PLATFORMS: Mapping[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            name="linux_x86_64",
            os_name="posix",
            sys_platform="linux",
            platform_system="Linux",
            platform_machine="x86_64",
            conda_platform="linux-64",
            uv_platform="x86_64-manylinux_2_28",
            platform_tags=_manylinux_tags("x86_64", 28),
            accelerators=frozenset({"cpu", "cuda"}),
            labelled_accelerators=frozenset({"cuda"}),
        ),
        Platform(
            name="linux_aarch64",
            os_name="posix",
            sys_platform="linux",
            platform_system="Linux",
            platform_machine="aarch64",
            conda_platform="linux-aarch64",
            uv_platform="aarch64-manylinux_2_28",
            platform_tags=_manylinux_tags("aarch64", 28),
            accelerators=frozenset({"cpu", "cuda"}),
            labelled_accelerators=frozenset(),
        ),
        Platform(
            name="macos_arm64",
            os_name="posix",
            sys_platform="darwin",
            platform_system="Darwin",
            platform_machine="arm64",
            conda_platform="osx-arm64",
            uv_platform="aarch64-apple-darwin",
            platform_tags=tuple(mac_platforms(_MACOS_VERSION, "arm64")),
            accelerators=frozenset({"cpu"}),
            labelled_accelerators=frozenset(),
        ),
        Platform(
            name="windows_amd64",
            os_name="nt",
            sys_platform="win32",
            platform_system="Windows",
            platform_machine="AMD64",
            conda_platform="win-64",
            uv_platform="x86_64-pc-windows-msvc",
            platform_tags=("win_amd64",),
            accelerators=frozenset({"cpu", "cuda"}),
            labelled_accelerators=frozenset({"cuda"}),
        ),
    )
}


def parse_python(text: str) -> Version:
    """`3.11` means 3.11.0 (installs on every 3.11.x); `3.11.7` is taken as given.

    At most `PYTHON_CHARS` characters, as given and as stored: a longer one would resolve and
    then be refused by the store (and a number past 4,300 digits is not even an int).
    """
    if len(text.strip()) > PYTHON_CHARS:
        raise _too_long(text)
    try:
        version = Version(text.strip())
    except InvalidVersion:
        raise InvalidTarget(
            f"invalid Python version {text!r}", context={"field": "python", "value": text}
        ) from None
    release = version.release
    if version.is_prerelease or version.local or version.epoch or len(release) > 3:
        raise InvalidTarget(f"invalid Python version {text!r}", context={"field": "python", "value": text})
    if len(release) < 2 or not PYTHON_MIN <= release[:2] <= PYTHON_MAX:
        raise InvalidTarget(
            f"Python {text} is not supported",
            hint=f"supported: {PYTHON_MIN[0]}.{PYTHON_MIN[1]} to {PYTHON_MAX[0]}.{PYTHON_MAX[1]}",
            context={"field": "python", "value": text},
        )
    normal = Version(".".join(str(part) for part in (*release, 0, 0)[:3]))
    if len(str(normal)) > PYTHON_CHARS:
        raise _too_long(text)
    return normal


def _too_long(text: str) -> InvalidTarget:
    shown = text.strip()[:PYTHON_CHARS] + "…"
    return InvalidTarget(
        f"Python version {shown!r} is longer than {PYTHON_CHARS} characters",
        context={"field": "python", "value": shown, "limit": PYTHON_CHARS},
    )


@dataclass(frozen=True, kw_only=True)
class Target:
    """The machine a lock is for. Compare and hash by value; build with `Target.of`.

    Not slotted: tags and the marker environment are computed once per target and cached.
    """

    platform: Platform
    python: Version
    variant: Accelerator | None

    @classmethod
    def of(cls, platform: str, python: str, cuda: str | None = None) -> Target:
        spec = PLATFORMS.get(platform.strip().lower())
        if spec is None:
            raise InvalidTarget(
                f"unknown platform {platform!r}",
                hint="use one of: " + ", ".join(PLATFORMS),
                context={"field": "platform", "value": platform},
            )
        variant = parse_variant(cuda)
        if variant is not None and variant.kind not in spec.accelerators:
            raise InvalidTarget(
                f"{variant.kind_title} variant {variant.name} is not available on {spec.name}",
                hint="use cuda=cpu (or omit it) for macOS",
                context={"field": "cuda", "value": cuda, "platform": spec.name},
            )
        return cls(platform=spec, python=parse_python(python), variant=variant)

    @classmethod
    def from_json(cls, data: object) -> Target:
        """The target whose `to_json()` is exactly `data`; anything else raises `InvalidTarget`.

        Stricter than `Target.of`: stored and digested targets are canonical, so an alias or a
        short Python version here means the data did not come from `to_json`.
        """
        if not isinstance(data, Mapping) or set(data) != _JSON_FIELDS:
            raise InvalidTarget(
                "a target is an object with exactly the fields platform, python and cuda",
                context={"field": "target", "value": repr(data)[:200]},
            )
        platform, python, cuda = data["platform"], data["python"], data["cuda"]
        for name, value in (("platform", platform), ("python", python)):
            if not isinstance(value, str):
                raise InvalidTarget(f"target {name} must be a string", context={"field": name})
        if cuda is not None and not isinstance(cuda, str):
            raise InvalidTarget("target cuda must be a string or null", context={"field": "cuda"})
        target = cls.of(platform, python, cuda)
        canonical = target.to_json()
        for name in sorted(_JSON_FIELDS):
            if canonical[name] != data[name]:
                raise InvalidTarget(
                    f"target {name} {data[name]!r} is not in canonical form ({canonical[name]!r})",
                    context={"field": name, "value": data[name]},
                )
        return target

    @property
    def python_version(self) -> str:
        """`3.11`, as in the `python_version` marker."""
        return f"{self.python.major}.{self.python.minor}"

    @property
    def variant_name(self) -> str | None:
        return None if self.variant is None else self.variant.name

    @cached_property
    def marker_environment(self) -> dict[str, str]:
        """Every PEP 508 marker variable, as pip on the target would see them."""
        full = str(self.python)
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": self.platform.os_name,
            "platform_machine": self.platform.platform_machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": self.platform.platform_system,
            "platform_version": "",
            "python_full_version": full,
            "python_version": self.python_version,
            "sys_platform": self.platform.sys_platform,
        }

    @cached_property
    def tags(self) -> tuple[Tag, ...]:
        """Supported wheel tags, best first, exactly as pip would order them on the target."""
        version = (self.python.major, self.python.minor)
        platforms = list(self.platform.platform_tags)
        abi = f"cp{version[0]}{version[1]}"
        ordered: list[Tag] = []
        ordered.extend(cpython_tags(version, [abi], platforms))
        ordered.extend(compatible_tags(version, abi, platforms))
        return tuple(dict.fromkeys(ordered))

    @cached_property
    def tag_rank(self) -> dict[Tag, int]:
        """Tag → rank (0 is best); the resolver ranks a wheel by its best tag."""
        return {tag: rank for rank, tag in enumerate(self.tags)}

    def wheel_rank(self, tags: Iterable[Tag]) -> int | None:
        """Rank of the best tag of a wheel on this target; None if it does not install here."""
        ranks = [self.tag_rank[tag] for tag in tags if tag in self.tag_rank]
        return min(ranks) if ranks else None

    def to_json(self) -> dict[str, str | None]:
        """The canonical form that enters the input digest."""
        return {
            "platform": self.platform.name,
            "python": str(self.python),
            "cuda": self.variant_name,
        }

    def describe(self) -> str:
        cuda = f", {self.variant_name}" if self.variant else ""
        return f"{self.platform.name}, Python {self.python}{cuda}"


_JSON_FIELDS = frozenset({"platform", "python", "cuda"})


def target_from_spec(spec: Mapping[str, object]) -> Target:
    """A target from loose user input (query string, JSON body, target.toml)."""
    platform = spec.get("platform")
    python = spec.get("python")
    cuda = spec.get("cuda")
    if not isinstance(platform, str) or not platform:
        raise InvalidTarget("target needs a platform", context={"field": "platform"})
    if not isinstance(python, str | int | float) or isinstance(python, bool):
        raise InvalidTarget("target needs a Python version", context={"field": "python"})
    if cuda is not None and not isinstance(cuda, str):
        raise InvalidTarget("cuda must be a string such as cu124 or 12.4", context={"field": "cuda"})
    return Target.of(platform, str(python), cuda)


_every_target_tag_lock = threading.Lock()
_every_target_tag_value: list[frozenset[Tag]] = []


def _every_target_tag() -> frozenset[Tag]:
    # Built once, under a lock: every fetch thread asks at once when the first pages arrive.
    if not _every_target_tag_value:
        with _every_target_tag_lock:
            if not _every_target_tag_value:
                tags: set[Tag] = set()
                for platform in PLATFORMS.values():
                    for minor in range(PYTHON_MIN[1], PYTHON_MAX[1] + 1):
                        python = Version(f"{PYTHON_MIN[0]}.{minor}.0")
                        tags.update(Target(platform=platform, python=python, variant=None).tags)
                _every_target_tag_value.append(frozenset(tags))
    return _every_target_tag_value[0]


def lockable_anywhere(tags: frozenset[Tag]) -> bool:
    """Whether a wheel with these tags installs on at least one target lockd can lock for.

    Two thirds of the files on big PyPI pages (grpcio, numpy) are for Pythons or platforms
    outside the table (cp27, ppc64le, musllinux, win32): no lock can ever pin them.
    """
    return not tags.isdisjoint(_every_target_tag())
