"""`lockd.render`: the format table, `render()`, determinism and JSON round trips for every format."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

import pytest

from lockd.errors import InvalidRequest
from lockd.lock import Lock
from lockd.render import DEFAULT_FORMAT, FILE_NAMES, FORMATS, FORMATS_BY_FILE_NAME, media_type, render


def test_the_five_formats_and_their_media_types() -> None:
    assert list(FORMATS) == ["requirements.txt", "pylock.toml", "conda-lock.yml", "json", "cyclonedx.json"]
    assert media_type("requirements.txt") == "text/plain; charset=utf-8"
    assert media_type("pylock.toml") == "application/toml"
    assert media_type("conda-lock.yml") == "application/yaml"
    assert media_type("json") == "application/json"
    assert media_type("cyclonedx.json") == "application/vnd.cyclonedx+json; version=1.6"


@pytest.mark.parametrize("fmt", ["requirements", "poetry.lock", "JSON", "", "requirements.txt "])
def test_unknown_format_is_an_invalid_request_listing_the_valid_ones(
    sample_lock: tuple[str, Lock], fmt: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        render(sample_lock[1], fmt)
    assert info.value.code == "invalid-request"
    assert info.value.context["valid"] == list(FORMATS)
    assert info.value.hint is not None and "pylock.toml" in info.value.hint
    with pytest.raises(InvalidRequest):
        media_type(fmt)


def test_json_is_the_canonical_lock_so_its_sha256_is_the_lock_digest(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    data = render(lock, "json")
    assert data == lock.canonical_bytes()
    assert hashlib.sha256(data).hexdigest() == lock.digest
    assert Lock.from_json(data).canonical_bytes() == data


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_rendering_twice_gives_identical_bytes(sample_lock: tuple[str, Lock], fmt: str) -> None:
    _, lock = sample_lock
    assert render(lock, fmt) == render(lock, fmt)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_lock_read_back_from_its_json_renders_identically(sample_lock: tuple[str, Lock], fmt: str) -> None:
    _, lock = sample_lock
    again = Lock.from_json(lock.canonical_bytes().decode("utf-8"))
    assert render(again, fmt) == render(lock, fmt)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_order_a_resolver_reports_packages_in_does_not_show(
    sample_lock: tuple[str, Lock], fmt: str
) -> None:
    _, lock = sample_lock
    shuffled = list(reversed(lock.packages))
    random.Random(4).shuffle(shuffled)
    rebuilt = Lock.build(
        input_digest=lock.input_digest,
        target=lock.target,
        plan=lock.plan,
        requirements=reversed(lock.requirements),
        constraints=lock.constraints,
        options=lock.options,
        packages=shuffled,
    )
    assert render(rebuilt, fmt) == render(lock, fmt)


@pytest.mark.parametrize("fmt", ["requirements.txt", "pylock.toml", "conda-lock.yml"])
def test_text_formats_are_utf8_with_one_final_newline_and_no_timestamp(
    sample_lock: tuple[str, Lock], fmt: str
) -> None:
    _, lock = sample_lock
    text = render(lock, fmt).decode("utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\r" not in text
    for line in text.splitlines():
        assert line == line.rstrip(), f"trailing whitespace in {line!r}"
    assert datetime.now(UTC).date().isoformat() not in text
    assert "created_at" not in text and "time_metadata" not in text


def test_the_format_table_names_each_file_and_media_type_once() -> None:
    assert DEFAULT_FORMAT == "requirements.txt"
    assert FILE_NAMES == ("requirements.txt", "pylock.toml", "conda-lock.yml", "lock.json", "cyclonedx.json")
    assert {name: f.name for name, f in FORMATS_BY_FILE_NAME.items()} == {
        "requirements.txt": "requirements.txt",
        "pylock.toml": "pylock.toml",
        "conda-lock.yml": "conda-lock.yml",
        "lock.json": "json",
        "cyclonedx.json": "cyclonedx.json",
    }
    accepted = [media for f in FORMATS.values() for media in f.accepted_media_types]
    assert len(accepted) == len(set(accepted))  # an Accept type selects one format
    assert FORMATS["requirements.txt"].accepted_media_types == ("text/plain",)
    assert FORMATS["conda-lock.yml"].accepted_media_types == (
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
    )
