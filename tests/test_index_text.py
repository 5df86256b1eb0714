"""`lockd.index_text`: hostile versions, specifiers, requirements and metadata fail here, as one version's problem."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd import index_text
from lockd.errors import MetadataMismatch, UnusableMetadata
from lockd.index_text import (
    MAX_MARKER_DEPTH,
    check_metadata,
    marker_depth,
    parse_requirement,
    parse_specifier,
    parse_version,
)

HUGE = "1" + "0" * 5000  # past Python's 4,300-digit int conversion limit
DEEP = "(" * 500 + 'python_version > "3"' + ")" * 500


def test_ordinary_texts_parse_as_packaging_parses_them() -> None:
    assert parse_version("2.5.1+cu124") == Version("2.5.1+cu124")
    assert str(parse_specifier(">=3.9,!=3.9.1")) == "!=3.9.1,>=3.9"
    requirement = parse_requirement('idna (>=2.5,<4) ; (python_version >= "3.8") and extra == "socks"')
    assert requirement.name == "idna" and str(requirement.specifier) == "<4,>=2.5"
    assert parse_requirement("pkg===1.0-weird").specifier.contains("1.0-weird")


@pytest.mark.parametrize("text", [HUGE, "1." + "9" * 70, "1.0" * 200])
def test_implausible_versions_are_invalid_not_value_errors(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(text)


@pytest.mark.parametrize("text", [f">={HUGE}", f"=={'9' * 4400}.*", "~=1." + "0" * 80])
def test_specifiers_whose_versions_cannot_convert_are_invalid(text: str) -> None:
    with pytest.raises(InvalidSpecifier):
        parse_specifier(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dep==1" + "0" * 500, "a number too long to be a version"),
        (f"dep=={HUGE}", "longer than 4096 characters"),
        (f"dep; {DEEP}", f"markers nested deeper than {MAX_MARKER_DEPTH}"),
        ("dep; python_version > '" + "1" * 80 + "'", "a number too long to be a version"),
        ("dep>=1," + ",".join(["<2"] * 2000), "longer than 4096 characters"),
        ("dep (>dev)", "Expected"),
    ],
)
def test_hostile_requirement_lines_are_invalid_requirements(text: str, reason: str) -> None:
    with pytest.raises(InvalidRequirement, match=reason):
        parse_requirement(text)


def test_marker_depth_ignores_parentheses_in_quotes() -> None:
    assert marker_depth('x; (a == "((((") and ((b == ")"))') == 2
    assert marker_depth(DEEP) == 500


def _metadata(name: str, version: str, *requires: str) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return ("\n".join(lines) + "\n\nA description with\nRequires-Dist: not-a-header\n").encode()


def _check(raw: bytes, name: str = "foo-bar", version: str = "1.0", limit: int = 100) -> None:
    check_metadata(
        raw, filename=f"{name}-{version}-py3-none-any.whl", name=canonicalize_name(name),
        version=Version(version), max_requires_dist=limit,
    )  # fmt: skip


def test_metadata_of_its_own_file_passes_normalised_as_pip_compares() -> None:
    _check(_metadata("Foo_Bar", "1.0.0", "idna"))  # PEP 503 name, PEP 440 version equality
    _check(_metadata("foo.bar", "1.0"))
    _check(_metadata("foo-bar", "1.0", *["idna"] * 100))  # the limit itself is fine


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (_metadata("click", "1.0", "certifi"), "its metadata says click 1.0, not foo-bar 1.0"),
        (_metadata("foo-bar", "2.0"), "its metadata says foo-bar 2.0, not foo-bar 1.0"),
        (_metadata("foo-bar", HUGE), "its metadata says foo-bar 1000"),
        (b"Metadata-Version: 2.1\n\n", "its metadata says (no Name) (no Version), not foo-bar 1.0"),
    ],
)
def test_metadata_naming_another_project_or_version_is_a_mismatch(raw: bytes, shown: str) -> None:
    with pytest.raises(MetadataMismatch) as raised:
        _check(raw)
    assert raised.value.code == "metadata-mismatch"
    assert raised.value.message.startswith(f"foo-bar-1.0-py3-none-any.whl: {shown}")
    assert len(raised.value.message) < 300


def test_too_many_requires_dist_lines_are_refused_before_any_parse() -> None:
    with pytest.raises(UnusableMetadata) as raised:
        _check(_metadata("foo-bar", "1.0", *["idna"] * 101))
    assert raised.value.code == "unusable-metadata"
    assert raised.value.context["requires_dist"] == 101 and raised.value.context["limit"] == 100
    assert "LOCKD_MAX_REQUIRES_DIST" in (raised.value.hint or "")


# Requires-Dist lines as indexes write them, and as they should not: each part drawn from
# real shapes, odd spacing, both quotes, URLs (whose `;` is no marker) and broken pieces.
_NAMES = st.sampled_from(["idna", "Foo.Bar", "zope_interface", "a", "x-y", "1bad", "", "na me"])
_EXTRAS = st.sampled_from(["", "[socks]", "[ a , B_c ]", "[]", "[bad", "[x,]"])
_SPECS = st.sampled_from(
    [
        "",
        ">=1.0",
        " (>=2.5,<4)",
        "==1.*",
        "~=1.2",
        "===1.0-weird",
        "!=3.9.1,>=3.9",
        ">dev",
        "(<2",
        "==1.0;",
        ">= 1 , < 2",
    ]
)
_MARKERS = st.sampled_from(
    [
        'extra == "dev"',
        "extra == 'Doc_s'",
        ' python_version < "3.11"',
        '(python_version >= "3.8") and extra == "socks"',
        "sys_platform == 'win32' or platform_machine == 'x86_64'",
        "'linux' in sys_platform",
        "python_version <= '3.7' ; ",
        "bad_variable == '1'",
        "",
        "extra ==",
    ]
)
_URLS = st.sampled_from(["", " @ https://example.org/a;b.whl", "@ file:///x.whl ", " @ "])


_LINES = st.builds(
    lambda name, extras, spec, url, gap, marker: (
        f"{name}{extras}{url or spec}{gap}" + ("" if marker is None else f";{marker}")
    ),
    _NAMES,
    _EXTRAS,
    _SPECS,
    _URLS,
    st.sampled_from(["", " ", "  "]),
    st.none() | _MARKERS,
)


@given(text=_LINES)
def test_a_line_parses_as_packaging_parses_it_whole(text: str) -> None:
    try:
        expected = Requirement(text)
    except InvalidRequirement as exc:
        with pytest.raises(InvalidRequirement) as raised:
            parse_requirement(text)
        assert str(raised.value) == str(exc)
        return
    got = parse_requirement(text)
    assert (got.name, got.url, got.extras, str(got.specifier)) == (
        expected.name,
        expected.url,
        expected.extras,
        str(expected.specifier),
    )
    assert str(got.marker) == str(expected.marker)
    assert got == expected and str(got) == str(expected)
    environment = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64"}
    for extra in ("", "dev", "docs", "socks"):
        if expected.marker is not None and got.marker is not None:
            try:
                want = expected.marker.evaluate({**environment, "extra": extra})
            except Exception as exc:  # the same failure, whatever it is
                with pytest.raises(type(exc)):
                    got.marker.evaluate({**environment, "extra": extra})
            else:
                assert got.marker.evaluate({**environment, "extra": extra}) is want


def test_lines_sharing_parts_get_requirements_of_their_own() -> None:
    first = parse_requirement('pytest>=7 ; extra == "dev"')
    second = parse_requirement('pytest>=7 ; extra == "test"')
    first.extras.add("mutated")
    assert second.extras == set() and parse_requirement("pytest>=7").extras == set()
    assert str(second.marker) == 'extra == "test"'


def test_long_parts_are_parsed_but_not_kept() -> None:
    name = "p" + "x" * 300
    alternatives = " or ".join(f'extra == "x{n}"' for n in range(20))  # a marker of 300 characters
    for i in range(20):
        assert parse_requirement(f"{name}>={i}; python_version > '{i}' or {alternatives}").name == name
    assert all(len(head) <= 256 for head in index_text._HEADS._items)
    assert all(len(marker) <= 256 for marker in index_text._MARKERS._items)


def test_the_kept_parts_are_bounded_by_their_characters() -> None:
    for i in range(15_000):  # ~330,000 characters of distinct heads, ~280,000 of markers
        parse_requirement(f"project-{i}>=1.{i}; python_version > '3.{i}'")
    assert index_text._HEADS.size <= 256 * 1024
    assert index_text._MARKERS.size <= 128 * 1024
    assert len(index_text._HEADS) > 1000  # still caching: the bound evicts the oldest
