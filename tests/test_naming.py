"""`lockd.naming`: which lock names and token name patterns are valid, and what a pattern allows."""

from __future__ import annotations

import pytest

from lockd.naming import RESERVED_SEGMENTS, InvalidName, name_allowed, parse_lock_name, parse_name_patterns
from lockd.render import FILE_NAMES


@pytest.mark.parametrize("name", ["trainer", "vision/trainer-cu128", "a.b_c-d/e1/f", "0"])
def test_valid_names(name: str) -> None:
    assert parse_lock_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Trainer",
        "vision//x",
        "vision/",
        "/x",
        "-x",
        "x/.hidden",
        "x y",
        "x/status",
        "a/requirements.txt",
        "x" * 201,
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        parse_lock_name(name)
    assert caught.value.status == 422


def test_every_served_file_name_is_reserved() -> None:
    assert set(FILE_NAMES) <= RESERVED_SEGMENTS


def test_patterns() -> None:
    assert parse_name_patterns(["vision/*", " audio* ", "exact", ""]) == ("audio*", "exact", "vision/*")
    with pytest.raises(InvalidName):
        parse_name_patterns(["*"])
    assert name_allowed(None, "anything")
    assert name_allowed(("vision/*",), "vision/trainer") and not name_allowed(("vision/*",), "visionary")
    assert name_allowed(("vision*",), "visionary")
    assert name_allowed(("exact",), "exact") and not name_allowed(("exact",), "exact/sub")
    assert not name_allowed((), "x")
