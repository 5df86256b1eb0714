"""`lockd.target`: marker environments and wheel tags of the target, never of the host."""

from __future__ import annotations

import json
import platform
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.tags import Tag, sys_tags

from lockd.accelerator import VARIANTS, parse_variant
from lockd.errors import InvalidTarget, LockdError
from lockd.target import PLATFORMS, PYTHON_MAX, PYTHON_MIN, Target, target_from_spec

EXPECTED_MARKERS = {
    "linux_x86_64": ("posix", "linux", "Linux", "x86_64", "linux-64"),
    "linux_aarch64": ("posix", "linux", "Linux", "aarch64", "linux-aarch64"),
    "macos_arm64": ("posix", "darwin", "Darwin", "arm64", "osx-arm64"),
    "macos_x86_64": ("posix", "darwin", "Darwin", "x86_64", "osx-64"),
    "windows_amd64": ("nt", "win32", "Windows", "AMD64", "win-64"),
    "windows_arm64": ("nt", "win32", "Windows", "ARM64", "win-arm64"),
}


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_every_platform_has_a_complete_marker_environment(name: str) -> None:
    target = Target.of(name, "3.12")
    env = target.marker_environment
    os_name, sys_platform, system, machine, conda = EXPECTED_MARKERS[name]
    assert (env["os_name"], env["sys_platform"], env["platform_system"], env["platform_machine"]) == (
        os_name,
        sys_platform,
        system,
        machine,
    )
    assert target.platform.conda_platform == conda
    assert env["python_version"] == "3.12" and env["python_full_version"] == "3.12.0"
    assert env["implementation_name"] == "cpython"
    # every variable PEP 508 defines evaluates without falling back to the host
    marker = Marker(
        'os_name == "x" or sys_platform == "x" or platform_machine == "x" or platform_python_implementation == "x"'
        ' or platform_release == "x" or platform_system == "x" or platform_version == "x" or python_version == "x"'
        ' or python_full_version == "x" or implementation_name == "x" or implementation_version == "x"'
    )
    assert marker.evaluate(dict(env)) is False
    assert Marker(f'sys_platform == "{sys_platform}" and python_version >= "3.12"').evaluate(dict(env))


@pytest.mark.parametrize(
    ("name", "best", "also", "never"),
    [
        (
            "linux_x86_64",
            "cp311-cp311-linux_x86_64",
            "cp311-cp311-manylinux2014_x86_64",
            "cp311-cp311-manylinux_2_29_x86_64",
        ),
        (
            "linux_aarch64",
            "cp311-cp311-linux_aarch64",
            "cp311-cp311-manylinux2014_aarch64",
            "cp311-cp311-manylinux2010_aarch64",
        ),
        (
            "macos_arm64",
            "cp311-cp311-macosx_13_0_arm64",
            "cp311-cp311-macosx_11_0_universal2",
            "cp311-cp311-macosx_14_0_arm64",
        ),
        ("windows_amd64", "cp311-cp311-win_amd64", "py3-none-any", "cp311-cp311-win32"),
    ],
)
def test_best_tags_of_each_platform(name: str, best: str, also: str, never: str) -> None:
    target = Target.of(name, "3.11")
    assert str(target.tags[0]) == best
    tags = {str(t) for t in target.tags}
    assert also in tags and never not in tags
    assert "cp39-abi3-" + best.split("-")[2] in tags  # abi3 wheels built for older Pythons install
    assert not any(t.startswith(("cp312-", "cp310-cp310")) for t in tags)
    assert not any("musllinux" in t for t in tags)  # the named Linux platforms are glibc
    any_rank = target.wheel_rank([Tag("py3", "none", "any")])
    assert any_rank is not None and any_rank > target.wheel_rank([target.tags[0]])  # type: ignore[operator]
    assert target.wheel_rank([Tag("cp311", "cp311", "freebsd_13_amd64")]) is None


@pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info[:2] == (3, 11)),
    reason="compares with packaging.tags on a linux x86_64 CPython 3.11 host",
)
def test_linux_x86_64_tags_are_what_pip_computes_on_such_a_host() -> None:
    target = Target.of("linux_x86_64", "3.11")
    host = list(sys_tags())
    assert set(target.tags) <= set(host)  # glibc here is >= 2.28
    assert [tag for tag in host if tag in set(target.tags)] == list(target.tags)


@pytest.mark.parametrize("text", [None, "", "  ", "none"])
def test_no_variant(text: str | None) -> None:
    assert parse_variant(text) is None
    assert Target.of("linux_x86_64", "3.11", text).variant is None


def test_python_version_defaults_to_the_first_patch_release() -> None:
    assert str(Target.of("linux_x86_64", "3.11").python) == "3.11.0"
    assert str(Target.of("linux_x86_64", "3.11.7").python) == "3.11.7"
    assert str(Target.of("linux_x86_64", "3.9").python) == "3.9.0"
    assert str(Target.of("linux_x86_64", "3.13").python) == "3.13.0"


@pytest.mark.parametrize(
    ("platform_name", "python", "cuda", "field", "words"),
    [
        ("macos_arm64", "3.11", "cu124", "cuda", "not available on macos_arm64"),
        ("macos_arm64", "3.11", "12.4", "cuda", "not available"),
        ("linux_riscv64", "3.11", None, "platform", "unknown platform"),
        ("", "3.11", None, "platform", "unknown platform"),
        ("linux_x86_64", "3.11", "cu999", "cuda", "unknown accelerator variant"),
        ("linux_x86_64", "3.11", "rocm9.9", "cuda", "unknown accelerator variant"),
        ("linux_x86_64", "2.7", None, "python", "not supported"),
        ("linux_x86_64", "3.16", None, "python", "not supported"),
        ("linux_x86_64", "3.8", None, "python", "not supported"),
        ("linux_x86_64", "3", None, "python", "not supported"),
        ("linux_x86_64", "3.11.0rc1", None, "python", "invalid Python version"),
        ("linux_x86_64", "three", None, "python", "invalid Python version"),
    ],
)
def test_invalid_targets_say_what_is_wrong(
    platform_name: str, python: str, cuda: str | None, field: str, words: str
) -> None:
    with pytest.raises(InvalidTarget) as info:
        Target.of(platform_name, python, cuda)
    assert info.value.code == "invalid-target"
    assert words in info.value.message
    assert info.value.context["field"] == field


def test_hints_list_the_valid_choices() -> None:
    with pytest.raises(InvalidTarget) as info:
        Target.of("linux", "3.11")
    assert (
        info.value.hint is not None and "linux_x86_64" in info.value.hint and "macos_arm64" in info.value.hint
    )
    with pytest.raises(InvalidTarget) as info:
        Target.of("linux_x86_64", "2.7")
    assert info.value.hint == "supported: 3.9 to 3.15"
    with pytest.raises(InvalidTarget) as info:
        Target.of("linux_x86_64", "3.11", "cu99")
    assert info.value.hint is not None and "cu124" in info.value.hint


def test_cpu_is_fine_on_macos() -> None:
    target = Target.of("macos_arm64", "3.12", "cpu")
    assert target.variant_name == "cpu"


def test_targets_compare_by_value_and_serialise_canonically() -> None:
    assert Target.of("Linux_X86_64", "3.11", "12.4") == Target.of("linux_x86_64", "3.11.0", "cu124")
    assert Target.of("linux_x86_64", "3.11", "cu124").to_json() == {
        "platform": "linux_x86_64",
        "python": "3.11.0",
        "cuda": "cu124",
    }
    assert Target.of("linux_x86_64", "3.11", "cu124").describe() == "linux_x86_64, Python 3.11.0, cu124"


def test_target_from_loose_spec() -> None:
    assert target_from_spec({"platform": "linux_aarch64", "python": "3.10", "cuda": "cpu"}) == Target.of(
        "linux_aarch64", "3.10", "cpu"
    )
    assert target_from_spec({"platform": "linux_aarch64", "python": 3.12}).python_version == "3.12"
    for spec in (
        {"python": "3.11"},
        {"platform": "linux_x86_64"},
        {"platform": "linux_x86_64", "python": True},
        {"platform": "linux_x86_64", "python": "3.11", "cuda": 124},
    ):
        with pytest.raises(InvalidTarget):
            target_from_spec(spec)


# --- the JSON round trip -------------------------------------------------------------------

_DROP = object()  # stands for "leave the field out"

SHIPPED_TARGETS = [
    Target.of(name, f"{PYTHON_MIN[0]}.{minor}", variant)
    for name, platform in PLATFORMS.items()
    for minor in range(PYTHON_MIN[1], PYTHON_MAX[1] + 1)
    for variant in (None, *VARIANTS)
    if variant is None or name in VARIANTS[variant].platforms
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# Spellings `Target.of` accepts that are not the canonical form, and values of the wrong kind.
near_misses = json_values | st.sampled_from(
    [
        "Linux_X86_64",
        " linux_x86_64",
        "linux",
        "3.11",
        "3.11.0 ",
        "3.14.0",
        "12.4",
        "CU124",
        "none",
        "",
        "cu999",
        3.11,
    ]
)


@st.composite
def valid_targets(draw: st.DrawFn) -> Target:
    name = draw(st.sampled_from(sorted(PLATFORMS)))
    variant = draw(st.sampled_from([None, *(v for v, a in VARIANTS.items() if name in a.platforms)]))
    minor = draw(st.integers(PYTHON_MIN[1], PYTHON_MAX[1]))
    patch = draw(st.integers(0, 30))
    return Target.of(name, f"{PYTHON_MIN[0]}.{minor}.{patch}", variant)


def test_every_shipped_combination_is_listed() -> None:
    # 7 Pythons. Linux x86_64: none, cpu, 8 CUDA, 9 ROCm, xpu; Linux aarch64: none, cpu, 8 CUDA;
    # Windows amd64: none, cpu, 8 CUDA, xpu; macOS (both) and Windows arm64: none or cpu.
    per_python = (1 + 1 + 8 + 9 + 1) + (1 + 1 + 8) + (1 + 1 + 8 + 1) + 3 * (1 + 1)
    assert len(SHIPPED_TARGETS) == len(set(SHIPPED_TARGETS)) == 7 * per_python


@pytest.mark.parametrize("target", SHIPPED_TARGETS, ids=lambda t: t.describe())
def test_every_shipped_target_round_trips_exactly(target: Target) -> None:
    assert Target.from_json(target.to_json()) == target
    assert Target.from_json(json.loads(json.dumps(target.to_json()))) == target


@settings(max_examples=50)
@given(valid_targets())
def test_targets_with_any_patch_release_round_trip(target: Target) -> None:
    again = Target.from_json(json.loads(json.dumps(target.to_json())))
    assert again == target and again.to_json() == target.to_json()


@settings(max_examples=50)
@given(
    valid_targets(), st.sampled_from(["platform", "python", "cuda", "extra"]), near_misses | st.just(_DROP)
)
def test_from_json_takes_only_exactly_what_to_json_gives(target: Target, key: str, value: object) -> None:
    data: dict[str, object] = dict(target.to_json())
    if value is _DROP:
        data.pop(key, None)
    else:
        data[key] = value
    try:
        again = Target.from_json(data)
    except LockdError as error:
        assert isinstance(error, InvalidTarget) and "field" in error.context
    else:
        assert again.to_json() == data  # accepted only in canonical form


@settings(max_examples=50)
@given(json_values)
def test_from_json_rejects_what_is_not_a_target(data: object) -> None:
    with pytest.raises(InvalidTarget):
        Target.from_json(data)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"platform": "linux_x86_64", "python": "3.11.0"}, "target"),
        ({"platform": "linux_x86_64", "python": "3.11.0", "cuda": None, "glibc": "2.28"}, "target"),
        ({"platform": "Linux_X86_64", "python": "3.11.0", "cuda": None}, "platform"),
        ({"platform": "linux_x86_64", "python": "3.11", "cuda": None}, "python"),
        ({"platform": "linux_x86_64", "python": 3.11, "cuda": None}, "python"),
        ({"platform": "linux_x86_64", "python": "3.11.0", "cuda": "12.4"}, "cuda"),
        ({"platform": "linux_x86_64", "python": "3.11.0", "cuda": ""}, "cuda"),
        ({"platform": "macos_arm64", "python": "3.11.0", "cuda": "cu124"}, "cuda"),
        ({"platform": "linux_x86_64", "python": "3.8.0", "cuda": None}, "python"),
        (["linux_x86_64", "3.11.0", None], "target"),
    ],
)
def test_malformed_targets_say_which_field(data: object, field: str) -> None:
    with pytest.raises(InvalidTarget) as info:
        Target.from_json(data)
    assert info.value.code == "invalid-target"
    assert info.value.context["field"] == field
