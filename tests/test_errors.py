"""`lockd.errors`: stable, unique codes and statuses; message, hint and context as the API shows them."""

from __future__ import annotations

import re

import pytest

from lockd import errors
from lockd.errors import InvalidRequirement, LockdError

CLASSES = [getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)]


def test_every_error_is_a_lockd_error_with_a_unique_kebab_case_code() -> None:
    codes = [cls.code for cls in CLASSES]
    assert len(codes) == len(set(codes))
    for cls in CLASSES:
        assert issubclass(cls, LockdError)
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", cls.code), cls.code
        assert 400 <= cls.status < 600 and cls.title


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("InvalidRequirement", "invalid-requirement", 422),
        ("UnsupportedRequirement", "unsupported-requirement", 422),
        ("InvalidTarget", "invalid-target", 422),
        ("InvalidRequest", "invalid-request", 400),
        ("UnknownProject", "unknown-project", 422),
        ("NoMatchingDistribution", "no-matching-distribution", 422),
        ("ResolutionImpossible", "resolution-impossible", 422),
        ("SdistNeedsBuild", "sdist-needs-build", 422),
        ("CudaMismatch", "cuda-mismatch", 422),
        ("IndexUnavailable", "index-unavailable", 502),
        ("NotFound", "not-found", 404),
    ],
)
def test_codes_the_api_promises(name: str, code: str, status: int) -> None:
    cls = getattr(errors, name)
    assert (cls.code, cls.status) == (code, status)


def test_message_hint_and_context() -> None:
    context = {"line": 3}
    error = InvalidRequirement(
        "requirements.in line 3: 'x y' is not a valid requirement", hint="Expected end", context=context
    )
    context["line"] = 99  # the error keeps its own copy
    assert error.context == {"line": 3}
    assert error.message.startswith("requirements.in line 3")
    assert str(error) == "requirements.in line 3: 'x y' is not a valid requirement\nhint: Expected end"
    assert str(LockdError("plain")) == "plain" and LockdError("plain").context == {}


def test_an_error_survives_json_with_its_class_and_context() -> None:
    # Single-flight waiters in another process re-raise the holder's error from this JSON.
    original = InvalidRequirement(
        "requirements.in line 2: bad", hint="fix it", context={"line": 2, "set": {"a"}}
    )
    again = LockdError.from_json(original.to_json())
    assert type(again) is InvalidRequirement
    assert (again.message, again.hint, again.context) == (
        "requirements.in line 2: bad",
        "fix it",
        {"line": 2, "set": ["a"]},
    )
    unknown = LockdError.from_json({"code": "no-such-code", "message": "m"})
    assert type(unknown) is LockdError and unknown.message == "m"
