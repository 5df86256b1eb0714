"""`lockd.inputs`: what changes the input digest and what never does, and how bad lines are refused."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockd.errors import InputTooLarge, InvalidRequest, InvalidRequirement, UnsupportedRequirement
from lockd.inputs import (
    InputRequirement,
    LockOptions,
    LockRequest,
    decode_body,
    parse_as_of,
    parse_requirements,
)
from lockd.routing import IndexPlan, plan_for
from lockd.target import Target

TARGET = Target.of("linux_x86_64", "3.11", "cu124")
LINES = [
    "torch==2.5.1",
    "numpy>=1.26,<2.2",
    "uvicorn[standard]>=0.30",
    'pywin32; sys_platform == "win32"',
    "requests",
]


def digest(
    text: str, target: Target = TARGET, options: LockOptions | None = None, constraints: str = ""
) -> str:
    return LockRequest(
        requirements=parse_requirements(text),
        constraints=parse_requirements(constraints, source="constraints"),
        target=target,
        plan=plan_for(target),
        options=options or LockOptions(),
    ).digest


BASE = digest("\n".join(LINES))

leading = st.sampled_from(["", " ", "\t", "   "])
trailing = st.sampled_from(["", " ", "\t", "  # a comment", "\t#x", " # -r other.in"])


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(LINES),
    before=st.lists(leading, min_size=len(LINES), max_size=len(LINES)),
    after=st.lists(trailing, min_size=len(LINES), max_size=len(LINES)),
    blanks=st.lists(st.sampled_from(["", "   ", "# comment only", "#"]), max_size=4),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_comments_blank_lines_whitespace_and_order_never_change_the_digest(
    order: list[str], before: list[str], after: list[str], blanks: list[str], newline: str
) -> None:
    lines = [f"{b}{line}{a}" for b, line, a in zip(before, order, after, strict=True)]
    text = newline.join(blanks + lines + blanks)
    assert digest(text) == BASE


@pytest.mark.parametrize(
    "variant",
    [
        "NumPy >= 1.26 , < 2.2",  # spacing and case inside a requirement
        "numpy<2.2,>=1.26",  # specifier order
        "numpy >=1.26, <2.2 \\\n  # continued",
    ],
)
def test_equivalent_spellings_give_the_same_digest(variant: str) -> None:
    text = "\n".join(variant if line.startswith("numpy") else line for line in LINES)
    assert digest(text.replace("\\\n  # continued", "")) == BASE


@pytest.mark.parametrize(
    "changed",
    [
        "torch==2.5.0",
        "torch>=2.5.1",
        "uvicorn[standard,dev]>=0.30",
        "uvicorn>=0.30",
        'pywin32; sys_platform == "linux"',
        "requests[socks]",
        "requests; python_version >= '3.12'",
    ],
)
def test_any_specifier_extra_or_marker_change_changes_the_digest(changed: str) -> None:
    name = (
        changed.split("[", maxsplit=1)[0]
        .split("=", maxsplit=1)[0]
        .split(">", maxsplit=1)[0]
        .split(";", maxsplit=1)[0]
        .strip()
    )
    text = "\n".join(changed if line.startswith(name) else line for line in LINES)
    assert digest(text) != BASE


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(LINES), st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12))
def test_adding_or_dropping_a_requirement_changes_the_digest(dropped: str, extra: str) -> None:
    name = extra.strip("-") or "x"
    if "--" in name:
        name = name.replace("--", "-")
    kept = [line for line in LINES if line != dropped]
    assert digest("\n".join(kept)) != BASE
    if name not in {"torch", "numpy", "uvicorn", "pywin32", "requests"}:
        assert digest("\n".join([*LINES, name])) != BASE


def test_target_index_plan_options_and_constraints_change_the_digest() -> None:
    text = "\n".join(LINES)
    others = {
        digest(text, Target.of("linux_x86_64", "3.12", "cu124")),
        digest(text, Target.of("linux_x86_64", "3.11.7", "cu124")),
        digest(text, Target.of("linux_x86_64", "3.11", "cu121")),
        digest(text, Target.of("linux_x86_64", "3.11")),
        digest(text, Target.of("linux_aarch64", "3.11", "cu124")),
        digest(text, options=LockOptions(prereleases=True)),
        digest(text, options=LockOptions(as_of=datetime(2025, 1, 1, tzinfo=UTC))),
        digest(text, constraints="numpy<2"),
    }
    assert BASE not in others and len(others) == 8
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=TARGET,
        plan=plan_for(TARGET, default_url="https://mirror/simple"),
    )
    assert request.digest != BASE
    assert digest(text, Target.of("linux_x86_64", "3.11.0", "12.4")) == BASE  # same target, other spelling


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("-r other.in", "includes (-r)"),
        ("--requirement=other.in", "includes (-r)"),
        ("-c constraints.txt", "constraint files"),
        ("-e .", "editable"),
        ("--editable git+https://github.com/x/y", "editable"),
        ("--index-url https://example/simple", "the option --index-url"),
        ("--extra-index-url=https://example/simple", "the option --extra-index-url"),
        ("--find-links /wheels", "the option --find-links"),
        ("git+https://github.com/pypa/pip.git@main#egg=pip", "VCS"),
        ("https://example.com/pkg-1.0.tar.gz", "direct URL"),
        ("pkg @ https://example.com/pkg-1.0-py3-none-any.whl", "direct URL"),
        ("pkg@https://example.com/pkg.whl", "direct URL"),
        ("./vendor/pkg", "local paths"),
        ("/abs/pkg-1.0-py3-none-any.whl", "local paths"),
        ("pkg-1.0.tar.gz", "local paths"),
        ("C:\\wheels\\pkg.whl", "local paths"),
    ],
)
def test_every_unsupported_line_kind_names_its_line(line: str, words: str) -> None:
    with pytest.raises(UnsupportedRequirement) as info:
        parse_requirements(f"# header\nrequests\n\n{line}\nnumpy\n")
    error = info.value
    assert error.code == "unsupported-requirement"
    assert error.context["line"] == 4
    assert "requirements.in line 4" in error.message and words in error.message


@pytest.mark.parametrize(
    "line", ["requests==", "numpy>=>1.0", "foo bar", "pkg[extra", "pkg; os_name ==", "==1.0", "pkg (>=1.0"]
)
def test_invalid_syntax_is_invalid_requirement_with_its_line(line: str) -> None:
    with pytest.raises(InvalidRequirement) as info:
        parse_requirements(f"requests\n{line}\n", source="requirements.in")
    assert info.value.code == "invalid-requirement"
    assert info.value.context["line"] == 2
    assert info.value.message.startswith("requirements.in line 2:")


def test_line_numbers_count_continuations_and_comments() -> None:
    with pytest.raises(InvalidRequirement) as info:
        parse_requirements("# one\nnumpy \\\n  >=1.0\n\nfoo bar  # five\n")
    assert info.value.context["line"] == 5
    (numpy,) = parse_requirements("# one\nnumpy \\\n  >=1.0\n")
    assert numpy.line == 2 and numpy.canonical == "numpy>=1.0"


def test_nul_bytes_are_refused_with_their_line() -> None:
    with pytest.raises(InvalidRequirement) as info:
        parse_requirements("requests\nnum\x00py\n")
    assert info.value.context["line"] == 2 and "NUL" in info.value.message


def test_decode_body() -> None:
    assert decode_body(b"torch==2.5.1\n") == "torch==2.5.1\n"
    assert decode_body(b"\xef\xbb\xbfnumpy\n") == "numpy\n"  # a BOM is tolerated
    with pytest.raises(InvalidRequest) as info:
        decode_body(b"numpy\n\xff\xfe")
    assert info.value.code == "invalid-request" and info.value.context["offset"] == 6
    with pytest.raises(InvalidRequest):
        decode_body("numpy # café\n".encode("latin-1"))


def test_max_requirements() -> None:
    text = "\n".join(f"pkg{i}" for i in range(5))
    assert len(parse_requirements(text, max_requirements=5)) == 5
    with pytest.raises(InputTooLarge) as info:
        parse_requirements(text, max_requirements=4)
    assert info.value.code == "input-too-large" and info.value.context["limit"] == 4


def test_normalised_form() -> None:
    (req,) = parse_requirements("Uvicorn[Standard,HTTP_Tools] >= 0.30 ; python_version>='3.9'")
    assert req.name == "uvicorn"
    assert req.canonical == 'uvicorn[http-tools,standard]>=0.30; python_version >= "3.9"'
    assert (
        req.describe()
        == 'requirements.in line 1 asks for uvicorn[http-tools,standard]>=0.30; python_version >= "3.9"'
    )


# -- round trips: a request read back from its JSON is an equal value ----------------------

_NAMES = st.sampled_from(["numpy", "Torch", "typing_extensions", "zope.interface", "ruamel-yaml", "A"])
_EXTRAS = st.lists(st.sampled_from(["socks", "Standard", "http_tools", "all"]), max_size=2)
_VERSIONS = st.sampled_from(
    ["1", "1.0", "2.5.1", "1.0rc1", "1.0.post2", "2!1.0", "3.0.dev0", "1.0.0", "0.30"]
)
_SPECIFIERS = st.lists(
    st.tuples(st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~="]), _VERSIONS).filter(
        lambda spec: spec[0] != "~=" or "." in spec[1]
    ),
    max_size=2,
)
_MARKERS = st.sampled_from(
    [
        "",
        "; python_version>='3.10'",
        ' ; sys_platform == "win32" and (platform_machine == "AMD64" or extra == "gpu")',
        "; platform_release == 'é'",  # non-ASCII survives storage exactly (no \\u escapes)
    ]
)
_TARGETS = st.sampled_from(
    [
        Target.of("linux_x86_64", "3.11", "cu124"),
        Target.of("linux_x86_64", "3.11"),
        Target.of("macos_arm64", "3.12.4"),
        Target.of("windows_amd64", "3.9", "cpu"),
    ]
)
_MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.one_of(st.none(), st.timezones()),
)
_OPTIONS = st.builds(LockOptions, prereleases=st.booleans(), as_of=st.none() | _MOMENTS)


@st.composite
def _requirement_lines(draw: st.DrawFn) -> str:
    name = draw(_NAMES)
    extras = draw(_EXTRAS)
    written = name + (f"[{','.join(extras)}]" if extras else "")
    written += ",".join(op + version for op, version in draw(_SPECIFIERS))
    return written + draw(_MARKERS)


_TEXTS = st.lists(_requirement_lines(), min_size=1, max_size=6).map("\n".join)


@st.composite
def _requests(draw: st.DrawFn) -> LockRequest:
    target = draw(_TARGETS)
    default = draw(st.sampled_from(["https://pypi.org/simple/", "https://mirror.example/simple"]))
    family = draw(st.sampled_from([("torch",), ("torch", "torchvision", "Triton")]))
    return LockRequest(
        requirements=parse_requirements(draw(_TEXTS)),
        constraints=parse_requirements(draw(st.just("") | _TEXTS), source="constraints.txt"),
        target=target,
        plan=plan_for(target, default_url=default, family=family),
        options=draw(_OPTIONS),
    )


@settings(max_examples=150, deadline=None)
@given(_requests())
def test_a_request_read_back_from_its_json_is_equal_and_has_the_same_digest(request: LockRequest) -> None:
    data = request.canonical_bytes()
    again = LockRequest.from_json(data)
    assert again == request
    assert again.canonical_bytes() == data and again.digest == request.digest
    assert LockRequest.from_json(data.decode()) == request
    assert LockRequest.from_json(request.to_json()) == request
    assert request.digest == hashlib.sha256(data).hexdigest()
    assert json.loads(data) == request.to_json()


@settings(max_examples=100, deadline=None)
@given(_requirement_lines())
def test_a_requirement_read_back_from_its_json_is_equal_and_its_normal_form_is_a_fixed_point(
    line: str,
) -> None:
    (written,) = parse_requirements(line)
    again = InputRequirement.from_json(written.to_json())
    assert again == written and hash(again) == hash(written)
    assert again.to_json() == written.to_json() == written.canonical


def test_a_requirement_is_equal_by_its_normal_form_not_by_where_it_was_written() -> None:
    (first,) = parse_requirements("NumPy >= 1.26")
    (second,) = parse_requirements("\n# comment\nnumpy>=1.26", source="constraints.txt")
    assert first == second and (first.line, second.line) == (1, 3)
    assert first != parse_requirements("numpy>=1.26.0")[0]  # another digest, so another value
    with pytest.raises(InvalidRequirement):
        InputRequirement.from_json("numpy\nrequests")


@settings(max_examples=100, deadline=None)
@given(_OPTIONS)
def test_options_read_back_from_their_json_are_equal(options: LockOptions) -> None:
    again = LockOptions.from_json(json.loads(json.dumps(options.to_json())))
    assert again == options and again.to_json() == options.to_json()
    assert options.as_of is None or options.as_of.tzinfo is UTC


def test_requests_that_differ_only_in_order_duplicates_and_comments_are_equal_values() -> None:
    def request(text: str) -> LockRequest:
        return LockRequest(
            requirements=parse_requirements(text), constraints=(), target=TARGET, plan=plan_for(TARGET)
        )

    written = request("torch==2.5.1\nnumpy  # pinned below\nNumPy\n")
    assert written == request("numpy\ntorch == 2.5.1")
    assert [r.canonical for r in written.requirements] == ["numpy", "torch==2.5.1"]
    assert written.requirements[0].line == 2  # of two equal lines, the first written is kept
    assert written != request("numpy\ntorch==2.5.0")


def test_a_plan_keeps_the_family_only_with_an_accelerator_index() -> None:
    def request(target: Target) -> LockRequest:
        return LockRequest(
            requirements=parse_requirements("torch"), constraints=(), target=target, plan=plan_for(target)
        )

    host = request(Target.of("linux_x86_64", "3.11"))
    assert host.plan.family == frozenset() == plan_for(host.target).family  # it routes nothing there
    assert IndexPlan.from_json(host.plan.to_json()) == host.plan
    cuda = request(TARGET)
    assert (
        cuda.plan == plan_for(TARGET)
        and LockRequest.from_json(cuda.to_json()).plan.family == plan_for(TARGET).family
    )


def test_from_json_refuses_what_is_not_a_canonical_input() -> None:
    for data in (b"[]", {"lockd-input": 2}, "{}"):
        with pytest.raises(InvalidRequest):
            LockRequest.from_json(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
        ("2025-01-31T10:00:00Z", datetime(2025, 1, 31, 10, tzinfo=UTC)),
        ("2025-01-31T10:00:00+02:00", datetime(2025, 1, 31, 8, tzinfo=UTC)),
        (" 2025-01-31T10:00:00.5 ", datetime(2025, 1, 31, 10, 0, 0, 500_000, tzinfo=UTC)),
    ],
)
def test_parse_as_of_reads_iso_8601_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_as_of(text)
    assert parsed == expected and parsed.tzinfo is UTC
    assert LockOptions(as_of=parsed) == LockOptions(as_of=expected)


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "", "1700000000"])
def test_parse_as_of_refuses_what_is_not_a_date(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_as_of(text)
    assert info.value.context["field"] == "as_of" and "ISO 8601" in info.value.message


def test_a_line_parsed_before_gives_the_same_requirement_and_only_short_lines_are_kept() -> None:
    # The resolver keeps its work by the identity of a requirement's specifier set, so an input's
    # unchanged lines must come back as the objects they were parsed into; what is kept is bounded.
    first = parse_requirements("numpy>=1.26,<2.2\nrequests\n")
    again = parse_requirements("# edited\nrequests\nnumpy>=1.26,<2.2\n", source="other.in")
    assert again[1].requirement is first[0].requirement and again[0].requirement is first[1].requirement
    assert (again[1].line, again[1].source) == (3, "other.in")  # where it came from is the input's own
    long_line = "numpy>=1.26," + ",".join(f"!=0.0.{n}" for n in range(40))
    assert len(long_line) > 200
    assert parse_requirements(long_line)[0].requirement is not parse_requirements(long_line)[0].requirement
    for _ in range(2):  # a bad line is refused every time, never kept as an answer
        with pytest.raises(InvalidRequirement):
            parse_requirements("numpy>=>1\n")
