"""`lockd.header_fields`: core metadata's header fields, exactly as the email package reads them."""

from __future__ import annotations

import time
from email.parser import BytesHeaderParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lockd import header_fields as module
from lockd.header_fields import header_fields


def _reference(raw: bytes) -> dict[str, tuple[str, ...]]:
    """What `BytesHeaderParser` (compat32, as pip reads metadata) gives, field by field, as text."""
    fields: dict[str, list[str]] = {}
    for name, value in BytesHeaderParser().parsebytes(raw).items():
        fields.setdefault(name.lower(), []).append(str(value))
    return {name: tuple(values) for name, values in fields.items()}


def _fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(raw: bytes) -> object:
        raise AssertionError(f"left to the email package: {raw[:80]!r}")

    monkeypatch.setattr(module, "_by_email", refuse)


_METADATA = b"""Metadata-Version: 2.4
Name: demo-pkg
Version: 1.0.post1
Summary: A demo \xc3\xa9t\xc3\xa9
Author-email: S\xc3\xa9bastien <s@example.org>
License: Line one
        line two
Requires-Python: >=3.9
Requires-Dist: numpy>=1.26
Requires-Dist: rich; extra == "cli"
requires-dist:   typing-extensions ; python_version < "3.11"
Dynamic: license
Provides-Extra: cli

Body text: not a field
Requires-Dist: not-read
"""


def test_a_real_shaped_metadata_file_is_read_without_the_email_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = _reference(_METADATA)
    _fast_only(monkeypatch)
    fields = header_fields(_METADATA)
    assert fields.fields == expected
    assert fields.get("requires-dist") == "numpy>=1.26"
    assert fields.get_all("Requires-Dist") == ["numpy>=1.26", 'rich; extra == "cli"', 'typing-extensions ; python_version < "3.11"']  # fmt: skip
    assert fields.get("License") == "Line one\n        line two"
    assert (
        fields.get("Summary") == "A demo \ufffd\ufffdt\ufffd\ufffd"
    )  # as str(Header) renders bytes outside ASCII
    assert fields.get("Missing") == ""
    assert fields.get_all("Missing") is None


_LINE = st.one_of(
    st.builds(
        lambda name, sep, value: name + b":" + sep + value,
        st.sampled_from([b"Name", b"Requires-Dist", b"requires-dist", b"Version", b"X-Odd_Name.1", b"", b"From",
                         b"From x", b"Bad Name", b"Na\xc3\xa9me", b"N\x01"]),
        st.sampled_from([b" ", b"", b"  \t", b"\t"]),
        st.binary(max_size=12) | st.sampled_from([b"foo>=1; extra == 'x'", b"caf\xc3\xa9", b" trailing  ", b"a:b"]),
    ),
    st.sampled_from([b" continued", b"\tcontinued", b"   ", b"", b"not a field", b"From someone", b"\x0cfeed",
                     b":no name", b"x\ry: 1"]),
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_LINE, max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans())
@example([b"Name: a", b" b", b"", b"Version: 1"], b"\n", True)
@example([b" first is a continuation", b"Name: a"], b"\n", True)
@example([b"Name:", b"  x"], b"\n", False)
def test_every_block_reads_as_the_email_package_reads_it(
    lines: list[bytes], newline: bytes, end: bool
) -> None:
    raw = newline.join(lines) + (newline if end else b"")
    assert header_fields(raw).fields == _reference(raw)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\n", b"\nName: a\n", b"Name: a", b"Name: a\n\n\nVersion: 2\n", b"Name: a\nVersion: 1\n \n\nX: y"],
)
def test_edges_of_the_block(raw: bytes) -> None:
    assert header_fields(raw).fields == _reference(raw)


def test_well_formed_blocks_never_reach_the_email_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_only(monkeypatch)
    header_fields(b"Name: a\nVersion: 1\nDescription: x\n  y\n\t z\n\nbody\r\nmore: x\n")
    header_fields(b"Name: a\nSummary: caf\xc3\xa9")
    with pytest.raises(AssertionError, match="left to the email package"):
        header_fields(b"Name: a\r\nVersion: 1\r\n")


def test_hostile_blocks_are_read_in_linear_time() -> None:
    # A field name that never meets its colon: searched for instead of matched in place, each
    # later position tried it again (20,000 characters took 2.6 s; these would take minutes).
    for raw in (
        b"Name: x\n" + b"a" * 200_000 + b"\n",
        b"Name: x\n" + b"a" * 200_000 + b": y\n" + b" " * 200_000 + b"\n",
        b"Name: x\n" + b" continued\n" * 50_000,
    ):
        started = time.monotonic()
        assert header_fields(raw).fields == _reference(raw)
        assert time.monotonic() - started < 2.0
