"""`lockd.target`: marker environments and wheel tags of the target, never of the host."""

from __future__ import annotations

import json
import platform
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags

from lockd.accelerator import VARIANTS, parse_variant
from lockd.errors import InvalidTarget, LockdError
from lockd.inputs import canonical_json
from lockd.target import PLATFORMS, PYTHON_MAX, PYTHON_MIN, Target, platform_named, target_from_spec

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


# --- issue 14: levels, free-threaded Pythons, aliases -----------------------------------------


def test_default_targets_serialise_exactly_as_before_levels_existed() -> None:
    # Every stored input digest depends on these bytes: a default level adds no field.
    assert canonical_json(Target.of("linux_x86_64", "3.11").to_json()) == (
        b'{"cuda":null,"platform":"linux_x86_64","python":"3.11.0"}'
    )
    assert Target.of("linux_aarch64", "3.12", glibc="2.28").to_json() == {
        "platform": "linux_aarch64",
        "python": "3.12.0",
        "cuda": None,
    }
    assert (
        Target.of("macos_arm64", "3.12", macos="13").to_json() == Target.of("macos_arm64", "3.12").to_json()
    )
    assert Target.of("x86_64-manylinux_2_28", "3.11") == Target.of("linux_x86_64", "3.11")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (("linux_x86_64", "3.14t", {}), {"python": "3.14.0t"}),
        (("linux_x86_64", "3.12", {"glibc": "2.34"}), {"glibc": "2.34"}),
        (("x86_64-manylinux_2_34", "3.12", {}), {"glibc": "2.34"}),
        (("manylinux2014_aarch64", "3.12", {}), {"platform": "linux_aarch64", "glibc": "2.17"}),
        (("x86_64-unknown-linux-musl", "3.12", {}), {"musl": "1.2"}),
        (("linux_aarch64", "3.12", {"musl": "1.1"}), {"platform": "linux_aarch64", "musl": "1.1"}),
        (("aarch64-apple-darwin", "3.13", {"macos": "14.2"}), {"platform": "macos_arm64", "macos": "14.0"}),
        (("osx-64", "3.13", {"macos": "10.15"}), {"platform": "macos_x86_64", "macos": "10.15"}),
        (("aarch64-pc-windows-msvc", "3.13", {}), {"platform": "windows_arm64"}),
        (("win-arm64", "3.15t", {}), {"platform": "windows_arm64", "python": "3.15.0t"}),
    ],
)
def test_aliases_and_levels_normalise_to_one_canonical_form(
    given: tuple[str, str, dict[str, str]], canonical: dict[str, str]
) -> None:
    platform_name, python, levels = given
    target = Target.of(platform_name, python, **levels)
    expected: dict[str, str | None] = {"platform": "linux_x86_64", "python": f"{python}.0", "cuda": None}
    expected.update(canonical)
    assert target.to_json() == expected
    assert Target.from_json(target.to_json()) == target


@pytest.mark.parametrize(
    ("asked", "best", "also", "never"),
    [
        (("linux_x86_64", "3.12", {"glibc": "2.34"}), "cp312-cp312-linux_x86_64", "cp312-cp312-manylinux_2_34_x86_64",
         "cp312-cp312-manylinux_2_35_x86_64"),
        (("linux_x86_64", "3.12", {"musl": "1.2"}), "cp312-cp312-linux_x86_64", "cp312-cp312-musllinux_1_2_x86_64",
         "cp312-cp312-manylinux_2_17_x86_64"),
        (("linux_aarch64", "3.12", {"musl": "1.1"}), "cp312-cp312-linux_aarch64", "cp312-cp312-musllinux_1_0_aarch64",
         "cp312-cp312-musllinux_1_2_aarch64"),
        (("macos_arm64", "3.13", {"macos": "14.0"}), "cp313-cp313-macosx_14_0_arm64", "cp313-cp313-macosx_11_0_arm64",
         "cp313-cp313-macosx_15_0_arm64"),
        (("macos_x86_64", "3.13", {}), "cp313-cp313-macosx_13_0_x86_64", "cp313-abi3-macosx_10_9_universal2",
         "cp313-cp313-macosx_13_0_arm64"),
        (("windows_arm64", "3.13", {}), "cp313-cp313-win_arm64", "py3-none-any", "cp313-cp313-win_amd64"),
        (("linux_x86_64", "3.14t", {}), "cp314-cp314t-linux_x86_64", "cp314-cp314t-manylinux_2_17_x86_64",
         "cp314-cp314-manylinux_2_17_x86_64"),
        (("macos_arm64", "3.13t", {}), "cp313-cp313t-macosx_13_0_arm64", "py3-none-any", "cp39-abi3-macosx_11_0_arm64"),
    ],
)  # fmt: skip
def test_tags_of_levels_and_free_threaded_builds(
    asked: tuple[str, str, dict[str, str]], best: str, also: str, never: str
) -> None:
    platform_name, python, levels = asked
    target = Target.of(platform_name, python, **levels)
    tags = {str(t) for t in target.tags}
    assert str(target.tags[0]) == best
    assert also in tags and never not in tags


def test_free_threaded_tags_are_what_packaging_computes_for_that_abi() -> None:
    # packaging's own rule for a cp314t interpreter: its ABI, abi3t (PEP 803), never abi3
    target = Target.of("linux_x86_64", "3.14t", glibc="2.17")
    platforms = ["linux_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    # the tags of the first three platform tags, in the order pip computes them
    expected = list(cpython_tags((3, 14), ["cp314t"], platforms)) + list(
        compatible_tags((3, 14), "cp314", platforms)
    )
    assert [t for t in target.tags if t.platform in platforms or t.platform == "any"] == list(
        dict.fromkeys(expected)
    )
    assert not any(t.abi == "abi3" for t in target.tags)
    assert target.marker_environment == Target.of("linux_x86_64", "3.14").marker_environment


def test_newer_hosts_accept_newer_levels_only_of_the_same_kind() -> None:
    glibc = Target.of("linux_x86_64", "3.11")
    assert glibc.installs_on_newer_host(frozenset({Tag("cp311", "cp311", "manylinux_2_41_x86_64")}))
    assert not glibc.installs_on_newer_host(frozenset({Tag("cp311", "cp311", "manylinux_2_42_x86_64")}))
    assert not glibc.installs_on_newer_host(frozenset({Tag("cp311", "cp311", "musllinux_1_2_x86_64")}))
    assert not glibc.installs_on_newer_host(frozenset({Tag("cp312", "cp312", "manylinux_2_31_x86_64")}))
    musl = Target.of("linux_x86_64", "3.11", musl="1.1")
    assert musl.installs_on_newer_host(frozenset({Tag("cp311", "cp311", "musllinux_1_2_x86_64")}))
    assert not musl.installs_on_newer_host(frozenset({Tag("cp311", "cp311", "manylinux_2_17_x86_64")}))
    mac = Target.of("macos_arm64", "3.12")
    assert mac.installs_on_newer_host(frozenset({Tag("cp312", "cp312", "macosx_26_0_arm64")}))
    assert mac.wheel_rank([Tag("cp312", "cp312", "macosx_14_0_arm64")]) is None
    windows = Target.of("windows_amd64", "3.12")
    assert windows.host_tags == frozenset(windows.tags)


@pytest.mark.parametrize(
    ("platform_name", "python", "extra", "field", "words"),
    [
        ("macos_arm64", "3.12", {"musl": "1.2"}, "musl", "does not apply to macos_arm64"),
        ("windows_amd64", "3.12", {"glibc": "2.31"}, "glibc", "does not apply to windows_amd64"),
        ("linux_x86_64", "3.12", {"glibc": "2.16"}, "glibc", "not a level lockd knows"),
        ("linux_x86_64", "3.12", {"glibc": "2.42"}, "glibc", "not a level lockd knows"),
        ("linux_x86_64", "3.12", {"musl": "1.3"}, "musl", "not a level lockd knows"),
        ("linux_x86_64", "3.12", {"glibc": "2.31", "musl": "1.2"}, "glibc", "at most one of"),
        ("x86_64-manylinux_2_34", "3.12", {"glibc": "2.31"}, "glibc", "means glibc 2.34"),
        ("macos_arm64", "3.12", {"macos": "10.15"}, "macos", "not a level lockd knows"),
        ("macos_arm64", "3.12", {"macos": "banana"}, "macos", "invalid macos level"),
        ("linux_x86_64", "3.12t", {}, "python", "no free-threaded build"),
        ("linux_x86_64", "3.9t", {}, "python", "no free-threaded build"),
        ("linux_x86_64", "3.16", {}, "python", "not supported"),
        ("linux", "3.12", {}, "platform", "unknown platform"),
        ("x86_64-manylinux_2_99", "3.12", {}, "platform", "unknown platform"),
        ("riscv64-unknown-linux", "3.12", {}, "platform", "unknown platform"),
        ("windows_arm64", "3.12", {"cuda": "cu128"}, "cuda", "not available on windows_arm64"),
        ("linux_aarch64", "3.12", {"cuda": "rocm6.4"}, "cuda", "not available on linux_aarch64"),
        ("linux_x86_64", "3.12", {"cuda": "cpu", "driver": "580.65.06"}, "driver", "goes with cuda=auto"),
        (
            "linux_x86_64",
            "3.12",
            {"cuda": "cu130", "driver": "570.1"},
            "driver",
            "needs NVIDIA driver 580.65.6",
        ),
        (
            "linux_x86_64",
            "3.12",
            {"cuda": "rocm6.4", "driver": "580.65"},
            "driver",
            "does not run ROCm builds",
        ),
        ("linux_x86_64", "3.12", {"cuda": "cu130", "driver": "fast"}, "driver", "invalid driver"),
    ],
)
def test_bad_levels_and_pythons_name_the_field_and_what_it_accepts(
    platform_name: str, python: str, extra: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(InvalidTarget) as info:
        target_from_spec({"platform": platform_name, "python": python, **extra})
    assert words in info.value.message, info.value.message
    assert info.value.context["field"] == field
    assert info.value.hint or info.value.context.get("accepted")


def test_an_unknown_spec_field_names_the_nearest_one() -> None:
    with pytest.raises(InvalidTarget) as info:
        target_from_spec({"platform": "linux_x86_64", "python": "3.12", "cdua": "cu124"})
    assert info.value.message == "unknown target field 'cdua': did you mean 'cuda'?"
    assert info.value.context["did_you_mean"] == "cuda"


def test_uv_names_its_platforms_as_lockd_reads_them() -> None:
    for name, spec in PLATFORMS.items():
        found = platform_named(spec.uv_platform)
        assert found is not None and found[0].name == name
        assert found[1] is None or found[1] == spec.default_level
    assert Target.of("linux_x86_64", "3.12", glibc="2.41").uv_platform is None  # uv stops at 2.40
    assert Target.of("linux_aarch64", "3.12", musl="1.2").uv_platform == "aarch64-unknown-linux-musl"
    assert Target.of("linux_aarch64", "3.12", musl="1.1").uv_platform is None


def test_describe_names_non_default_levels_and_free_threading() -> None:
    assert Target.of("linux_x86_64", "3.14t", glibc="2.34").describe() == (
        "linux_x86_64 (glibc 2.34), Python 3.14.0t"
    )
    assert (
        Target.of("macos_arm64", "3.13", macos="15").describe() == "macos_arm64 (macOS 15.0), Python 3.13.0"
    )


@settings(max_examples=60)
@given(
    st.sampled_from(sorted(PLATFORMS)),
    st.integers(9, 15),
    st.booleans(),
    st.data(),
)
def test_every_level_and_python_round_trips(
    name: str, minor: int, threaded: bool, data: st.DataObject
) -> None:
    platform = PLATFORMS[name]
    levels: dict[str, str] = {}
    if platform.levels:
        ranges = data.draw(st.sampled_from(platform.levels))
        levels[ranges.kind] = data.draw(st.sampled_from(ranges.accepted_text()))
    python = f"3.{minor}" + ("t" if threaded and minor >= 13 else "")
    target = Target.of(name, python, **levels)
    again = Target.from_json(json.loads(json.dumps(target.to_json())))
    assert again == target and again.tags == target.tags


def test_a_tag_sets_kept_answers_are_those_worked_out_afresh_also_past_the_bound() -> None:
    # `wheel_rank` and `installs_on_newer_host` keep each tag set's answer (every finder of the
    # target asks); a set asked again, an equal set of other objects, a set asked after the kept
    # answers were forgotten, and a list of the same tags all get the same answer.
    from lockd.target import target as module  # noqa: PLC0415

    target = Target.of("linux_x86_64", "3.11", glibc="2.28")
    sets = [
        frozenset({Tag("cp311", "cp311", "manylinux_2_17_x86_64"), Tag("py3", "none", "any")}),
        frozenset({Tag("cp311", "cp311", "manylinux_2_34_x86_64")}),
        frozenset({Tag("cp311", "cp311", "win_amd64")}),
        frozenset(),
    ]
    expected = [(target.wheel_rank(list(tags)), any(t in target.host_tags for t in tags)) for tags in sets]
    assert expected[0][0] is not None and expected[1] == (None, True) and expected[2] == (None, False)
    for _ in range(2):
        assert [(target.wheel_rank(t), target.installs_on_newer_host(t)) for t in sets] == expected
        again = [frozenset(Tag(t.interpreter, t.abi, t.platform) for t in tags) for tags in sets]
        assert [(target.wheel_rank(t), target.installs_on_newer_host(t)) for t in again] == expected
    filler = [frozenset({Tag(f"cp3{i}", "none", "any")}) for i in range(module._KEPT_TAG_SETS)]
    for tags in filler:  # fills the kept answers past their bound, which forgets them all
        target.wheel_rank(tags)
        target.installs_on_newer_host(tags)
    assert all(len(kept) <= module._KEPT_TAG_SETS for kept in target._tag_set_answers)
    assert [(target.wheel_rank(t), target.installs_on_newer_host(t)) for t in sets] == expected


def test_targets_hash_by_every_field_once_worked_out() -> None:
    # The hash is kept on the target (it keys every finder and parsed-metadata lookup): equal
    # targets hash equally however they were made, and a target differing in any field is apart.
    made = [
        (("linux_x86_64", "3.11"), {}),
        (("linux_x86_64", "3.12"), {}),
        (("linux_x86_64", "3.11", "cu124"), {}),
        (("linux_x86_64", "3.13t"), {}),
        (("linux_x86_64", "3.11"), {"glibc": "2.31"}),
        (("linux_aarch64", "3.11"), {}),
    ]
    first = {Target.of(*args, **levels): n for n, (args, levels) in enumerate(made)}
    assert len(first) == len(made)
    for n, (args, levels) in enumerate(made):
        again = Target.of(*args, **levels)
        hash(again)
        assert first[again] == n
        assert hash(again) == hash(Target.of(*args, **levels))
