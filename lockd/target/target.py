"""`Target`: the machine a lock is for, its marker environment and its wheel tags.

A target is a platform from the table (`lockd.target.platforms`) at a libc or macOS level, a
CPython version (free-threaded or not) and an optional accelerator variant. From it come the
complete PEP 508 marker environment and the best-first PEP 425 / PEP 600 / PEP 656 wheel tags
pip would compute *on that machine*, and `host_tags`: every tag a machine of the target at its
level or any newer one accepts, which the lock lists hashes for. `Target.to_json` is the
canonical form that enters the input digest (a level or driver appears only when it is not
the default, so targets that existed before levels keep their digests) and `Target.from_json`
its exact inverse. Nothing here reads the host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TypeVar

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.version import Version

from lockd.accelerator import VARIANTS, Accelerator, Driver, check_driver, parse_driver, parse_variant
from lockd.errors import InvalidTarget
from lockd.target.aliases import ALIAS_EXAMPLES, platform_named
from lockd.target.platforms import LEVEL_KINDS, PLATFORMS, Level, LevelKind, Platform
from lockd.target.python import parse_interpreter, python_text

__all__ = ["Target", "python_tags"]

_DRIVER_HINT = "driver= tells cuda=auto which variants the host runs; with a named GPU variant it is checked"
_REQUIRED_FIELDS = frozenset({"platform", "python", "cuda"})
_OPTIONAL_FIELDS = frozenset({*LEVEL_KINDS, "driver"})


def python_tags(python: Version, free_threaded: bool, platform_tags: Iterable[str]) -> tuple[Tag, ...]:
    """The tags pip accepts for this CPython on these platform tags, best first."""
    version = (python.major, python.minor)
    interpreter = f"cp{version[0]}{version[1]}"
    abi = interpreter + ("t" if free_threaded else "")
    platforms = list(platform_tags)
    ordered: list[Tag] = []
    ordered.extend(cpython_tags(version, [abi], platforms))
    ordered.extend(compatible_tags(version, interpreter, platforms))
    return tuple(dict.fromkeys(ordered))


def _unknown_platform(text: str) -> InvalidTarget:
    return InvalidTarget(
        f"unknown platform {text!r}",
        hint="use one of: "
        + ", ".join(PLATFORMS)
        + " (or uv's and conda's names, e.g. "
        + ", ".join(ALIAS_EXAMPLES)
        + ")",
        context={"field": "platform", "value": text[:100], "accepted": list(PLATFORMS)},
    )


def _level(spec: Platform, named: Level | None, asked: Mapping[LevelKind, str], text: str) -> Level | None:
    """The one level the platform name and the level fields agree on, else `InvalidTarget`."""
    if len(asked) > 1:
        raise InvalidTarget(
            "give at most one of " + ", ".join(f"{k}=" for k in asked),
            hint="a Linux target has a glibc= or a musl= level, a macOS target a macos= minimum",
            context={"field": next(iter(asked)), "value": ", ".join(asked.values())},
        )
    level = named
    if named is not None:
        levels = spec.level_range(named.kind)
        if levels is None or named.version not in levels.accepted:
            raise _unknown_platform(text)
    for kind, value in asked.items():
        levels = spec.level_range(kind)
        if levels is None:
            takes = ", ".join(f"{r.kind}=" for r in spec.levels) or "no level"
            raise InvalidTarget(
                f"{kind}= does not apply to {spec.name}",
                hint=f"{spec.name} takes {takes}",
                context={
                    "field": kind,
                    "value": value,
                    "platform": spec.name,
                    "accepted": [r.kind for r in spec.levels],
                },
            )
        level = levels.parse(value, spec.name)
        if named is not None and level != named:
            raise InvalidTarget(
                f"platform {text!r} means {named.describe()}, but {kind}={value} was given",
                hint=f"leave {kind}= out, or name the platform {spec.name}",
                context={"field": kind, "value": value, "platform": text},
            )
    return level if level is not None else spec.default_level


@dataclass(frozen=True, kw_only=True)
class Target:
    """The machine a lock is for. Compare and hash by value; build with `Target.of`.

    Not slotted: tags and the marker environment are computed once per target and cached.
    `level` is the platform's default when not given; `driver` is the driver `cuda=auto`
    chose the variant for (None when the variant was named).
    """

    platform: Platform
    python: Version
    variant: Accelerator | None
    free_threaded: bool = False
    level: Level | None = None
    driver: Driver | None = None

    def __post_init__(self) -> None:
        if self.level is None:
            object.__setattr__(self, "level", self.platform.default_level)

    def __hash__(self) -> int:
        # Every finder and parsed-metadata lookup hashes a key holding the target: the
        # dataclass's hash of all six fields (each a dataclass hashing its own) was 2.8 µs a
        # time, so it is worked out once. Equal targets hash equally: the same fields, as `==`.
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            found = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", found)
        return found

    @classmethod
    def of(
        cls,
        platform: str,
        python: str,
        cuda: str | None = None,
        *,
        glibc: str | None = None,
        musl: str | None = None,
        macos: str | None = None,
        driver: str | None = None,
    ) -> Target:
        """The target these values name; aliases and short spellings are normalised here."""
        found = platform_named(platform)
        if found is None:
            raise _unknown_platform(platform)
        spec, named = found
        given: tuple[tuple[LevelKind, str | None], ...] = (("glibc", glibc), ("musl", musl), ("macos", macos))
        asked = {kind: value for kind, value in given if value is not None and value.strip()}
        level = _level(spec, named, asked, platform)
        version, threaded = parse_interpreter(python)
        if cuda is not None and cuda.strip().lower() == "auto":
            raise InvalidTarget(
                "cuda=auto is chosen at intake, from the driver and the accelerator index",
                context={"field": "cuda", "value": cuda},
            )
        variant = parse_variant(cuda)
        if variant is not None and spec.name not in variant.platforms:
            raise InvalidTarget(
                f"{variant.kind_title} variant {variant.name} is not available on {spec.name}",
                hint="use one of: " + ", ".join(_variants_for(spec)),
                context={
                    "field": "cuda",
                    "value": cuda,
                    "platform": spec.name,
                    "accepted": _variants_for(spec),
                },
            )
        chosen_for = None
        if driver is not None:
            if variant is None or variant.kind == "cpu":
                raise InvalidTarget(
                    "driver= goes with cuda=auto or a GPU variant",
                    hint=_DRIVER_HINT,
                    context={"field": "driver", "value": driver},
                )
            chosen_for = parse_driver(driver)
            check_driver(variant, chosen_for, platform_name=spec.name, os_family=spec.os_family)
        return cls(
            platform=spec,
            python=version,
            variant=variant,
            free_threaded=threaded,
            level=level,
            driver=chosen_for,
        )

    @classmethod
    def from_json(cls, data: object) -> Target:
        """The target whose `to_json()` is exactly `data`; anything else raises `InvalidTarget`.

        Stricter than `Target.of`: stored and digested targets are canonical, so an alias or a
        short Python version here means the data did not come from `to_json`.
        """
        if (
            not isinstance(data, Mapping)
            or not _REQUIRED_FIELDS <= set(data) <= _REQUIRED_FIELDS | _OPTIONAL_FIELDS
        ):
            raise InvalidTarget(
                "a target is an object with the fields platform, python and cuda"
                " (and glibc, musl, macos or driver where they are not the default)",
                context={"field": "target", "value": repr(data)[:200]},
            )
        for name in ("platform", "python", *sorted(_OPTIONAL_FIELDS)):
            if name in data and not isinstance(data[name], str):
                raise InvalidTarget(f"target {name} must be a string", context={"field": name})
        if data["cuda"] is not None and not isinstance(data["cuda"], str):
            raise InvalidTarget("target cuda must be a string or null", context={"field": "cuda"})
        extra = {name: data[name] for name in _OPTIONAL_FIELDS if name in data}
        target = cls.of(data["platform"], data["python"], data["cuda"], **extra)
        canonical = target.to_json()
        if set(canonical) != set(data):
            raise InvalidTarget(
                "the target is not in canonical form (a default level is left out)",
                context={"field": "target", "value": repr(data)[:200]},
            )
        for name in sorted(canonical):
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
    def python_text(self) -> str:
        """`3.11.0`, `3.14.0t`: the canonical spelling of the interpreter."""
        return python_text(self.python, self.free_threaded)

    @property
    def abi(self) -> str:
        """`cp311`, `cp314t`: the interpreter's ABI tag."""
        return f"cp{self.python.major}{self.python.minor}" + ("t" if self.free_threaded else "")

    @property
    def variant_name(self) -> str | None:
        return None if self.variant is None else self.variant.name

    @property
    def uv_platform(self) -> str | None:
        """uv's `--python-platform` for this target; None where uv has no name for its level."""
        return self.platform.uv_platform_at(self.level)

    @property
    def platform_tags(self) -> tuple[str, ...]:
        return self.platform.platform_tags_at(self.level)

    @cached_property
    def marker_environment(self) -> dict[str, str]:
        """Every PEP 508 marker variable, as pip on the target would see them.

        A free-threaded build has the same markers: PEP 508 has no variable for the ABI.
        """
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
        """Supported wheel tags at the target's level, best first, as pip orders them there."""
        return python_tags(self.python, self.free_threaded, self.platform_tags)

    @cached_property
    def tag_rank(self) -> dict[Tag, int]:
        """Tag → rank (0 is best); the resolver ranks a wheel by its best tag."""
        return {tag: rank for rank, tag in enumerate(self.tags)}

    @cached_property
    def _newest_tags(self) -> dict[Tag, int]:
        """Tag → rank on a machine of the target at the newest level of its kind."""
        newest = self.platform.newest_level(self.level)
        if newest is None:
            return dict(self.tag_rank)
        tags = python_tags(self.python, self.free_threaded, self.platform.platform_tags_at(newest))
        return {tag: rank for rank, tag in enumerate(tags)}

    @property
    def host_tags(self) -> frozenset[Tag]:
        """Every tag a machine of the target accepts, at its level or any newer one in the table.

        The newest level's tags include every older level's (PEP 600, 656 and macOS tags are
        cumulative), so they are the tags of the newest machine.
        """
        return frozenset(self._newest_tags)

    def newer_host_rank(self, tags: Iterable[Tag]) -> int:
        """Rank of a wheel's best tag on the newest machine of the target (1 << 30 if none)."""
        return min((self._newest_tags[tag] for tag in tags if tag in self._newest_tags), default=1 << 30)

    @cached_property
    def _tag_set_answers(self) -> tuple[dict[frozenset[Tag], int | None], dict[frozenset[Tag], bool]]:
        """`wheel_rank` and `installs_on_newer_host` of each tag set asked, kept: every finder of
        the target asks of the few thousand sets PyPI's pages share. By value: equal sets are not
        always one object (30,051 objects for 701 sets on 303 PyPI pages), and a frozenset keeps
        its hash."""
        return {}, {}

    def wheel_rank(self, tags: Iterable[Tag]) -> int | None:
        """Rank of the best tag of a wheel on this target; None if it does not install here."""
        if not isinstance(tags, frozenset):
            return self._best_rank(tags)
        kept = self._tag_set_answers[0]
        try:
            return kept[tags]
        except KeyError:
            rank = self._best_rank(tags)
            _keep(kept, tags, rank)
            return rank

    def _best_rank(self, tags: Iterable[Tag]) -> int | None:
        ranks = [self.tag_rank[tag] for tag in tags if tag in self.tag_rank]
        return min(ranks) if ranks else None

    def installs_on_newer_host(self, tags: frozenset[Tag]) -> bool:
        """Whether a wheel installs on some machine of the target at its level or a newer one."""
        kept = self._tag_set_answers[1]
        known = kept.get(tags)
        if known is None:
            # Over the wheel's few tags: `isdisjoint(keys)` walked (and hashed) every newest tag.
            newest = self._newest_tags
            known = any(tag in newest for tag in tags)
            _keep(kept, tags, known)
        return known

    def to_json(self) -> dict[str, str | None]:
        """The canonical form that enters the input digest."""
        data: dict[str, str | None] = {
            "platform": self.platform.name,
            "python": self.python_text,
            "cuda": self.variant_name,
        }
        if self.level is not None and self.level != self.platform.default_level:
            data[self.level.kind] = str(self.level)
        if self.driver is not None:
            data["driver"] = str(self.driver)
        return data

    def describe(self) -> str:
        """`linux_x86_64, Python 3.11.0, cu124`; a level or driver only where not the default."""
        platform = self.platform.name
        if self.level is not None and self.level != self.platform.default_level:
            platform += f" ({self.level.describe()})"
        cuda = f", {self.variant_name}" if self.variant else ""
        if self.driver is not None:
            cuda += f" (auto, {self.driver.describe()})"
        return f"{platform}, Python {self.python_text}{cuda}"


def _variants_for(platform: Platform) -> list[str]:
    return [name for name, variant in VARIANTS.items() if platform.name in variant.platforms]


_KEPT_TAG_SETS = 16384  # answers kept per target; past this many they are all forgotten
_V = TypeVar("_V")


def _keep(kept: dict[frozenset[Tag], _V], tags: frozenset[Tag], answer: _V) -> None:
    if len(kept) >= _KEPT_TAG_SETS:
        kept.clear()
    kept[tags] = answer
