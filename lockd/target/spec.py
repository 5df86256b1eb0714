"""A target from loose user input: a query string, a JSON body, a `target.toml`.

The fields are `platform`, `python`, `cuda`, one of `glibc` / `musl` / `macos`, and `driver`.
An unknown field is an error naming the nearest known one. `cuda=auto` with `driver=` is
decided here, with the caller's answer to "does this variant have builds of what the request
pins?" (`offers`): the target names the chosen variant and records the driver it was chosen
for, and the `Selection` says why.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from lockd.accelerator import Accelerator, Selection, check_driver, parse_driver, select_variant
from lockd.errors import InvalidTarget
from lockd.target.target import Target

__all__ = ["SPEC_FIELDS", "VariantOffers", "choose_target", "nearest", "target_from_spec"]

SPEC_FIELDS: tuple[str, ...] = ("platform", "python", "cuda", "glibc", "musl", "macos", "driver")

# (the target without a variant, a variant) → None if the variant has builds of what the
# request pins for that target, else why not, in words.
VariantOffers = Callable[[Target, Accelerator], str | None]


def nearest(name: str, known: tuple[str, ...] | list[str]) -> str | None:
    """The known name `name` is most likely a misspelling of (`cdua` → `cuda`), if any."""
    found = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def _text(spec: Mapping[str, object], name: str) -> str | None:
    """A level or driver field: text (or an integer, `macos = 14`); a float is ambiguous (2.3 ≠ 2.30)."""
    value = spec.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidTarget(
        f'{name} must be given as a string such as "2.34"',
        context={"field": name, "value": repr(value)[:100]},
    )


def choose_target(
    spec: Mapping[str, object], *, offers: VariantOffers | None = None
) -> tuple[Target, Selection | None]:
    """The target `spec` asks for, and how `cuda=auto` chose its variant (None if named)."""
    for key in spec:
        if key not in SPEC_FIELDS:
            guess = nearest(str(key), SPEC_FIELDS)
            raise InvalidTarget(
                f"unknown target field {key!r}" + (f": did you mean {guess!r}?" if guess else ""),
                hint="target fields: " + ", ".join(SPEC_FIELDS),
                context={"field": str(key), "accepted": list(SPEC_FIELDS), "did_you_mean": guess},
            )
    platform, python, cuda = spec.get("platform"), spec.get("python"), spec.get("cuda")
    if not isinstance(platform, str) or not platform:
        raise InvalidTarget("target needs a platform", context={"field": "platform"})
    if not isinstance(python, str | int | float) or isinstance(python, bool):
        raise InvalidTarget("target needs a Python version", context={"field": "python"})
    if cuda is not None and not isinstance(cuda, str):
        raise InvalidTarget("cuda must be a string such as cu124 or 12.4", context={"field": "cuda"})
    levels = {"glibc": _text(spec, "glibc"), "musl": _text(spec, "musl"), "macos": _text(spec, "macos")}
    driver = _text(spec, "driver")
    if cuda is not None and cuda.strip().lower() == "auto":
        return _auto(platform, str(python), driver, levels, offers)
    target = Target.of(platform, str(python), cuda, **levels)
    if driver is not None and driver.strip():
        if target.variant is None or target.variant.kind == "cpu":
            raise InvalidTarget(
                "driver= goes with cuda=auto or a GPU variant",
                hint="driver= tells cuda=auto which variants the host runs; with a named GPU variant it is checked",
                context={"field": "driver", "value": driver},
            )
        check_driver(
            target.variant,
            parse_driver(driver),
            platform_name=target.platform.name,
            os_family=target.platform.os_family,
        )
    return target, None


def _auto(
    platform: str,
    python: str,
    driver: str | None,
    levels: dict[str, str | None],
    offers: VariantOffers | None,
) -> tuple[Target, Selection]:
    if driver is None or not driver.strip():
        raise InvalidTarget(
            "cuda=auto needs the host's driver: driver=<NVIDIA driver version> or driver=rocm<version>",
            hint="nvidia-smi shows the NVIDIA driver version (e.g. 580.65.06); for AMD give rocm6.4",
            context={"field": "driver", "value": None},
        )
    base = Target.of(platform, python, None, **levels)
    parsed = parse_driver(driver)
    if offers is None:
        raise InvalidTarget(
            "cuda=auto needs an accelerator index to look at", context={"field": "cuda", "value": "auto"}
        )

    def has_builds(variant: Accelerator) -> str | None:
        return offers(base, variant)

    selection = select_variant(
        parsed, platform_name=base.platform.name, os_family=base.platform.os_family, offers=has_builds
    )
    target = Target.of(platform, python, selection.variant.name, driver=str(parsed), **levels)
    return target, selection


def target_from_spec(spec: Mapping[str, object], *, offers: VariantOffers | None = None) -> Target:
    """A target from loose user input (query string, JSON body, target.toml)."""
    return choose_target(spec, offers=offers)[0]
