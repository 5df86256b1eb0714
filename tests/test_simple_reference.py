"""`lockd.simple`'s memoised, written-out parsers give exactly what the plain rules give.

The reference below is the JSON parser as it was before it was tuned for speed: one
`packaging.utils` call per file name, a regex per hash, `lockable_anywhere` per wheel. Every
page the fixture index serves (JSON and HTML) and a page of malformed entries must parse to
the same `ProjectPage`, every field of every file included.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urldefrag, urljoin

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from fixtures.served_index import WatchedIndex
from lockd.index_text import parse_specifier
from lockd.simple import DistFile, ProjectPage, json_page, parse_html_page, parse_json_page, parse_upload_time
from lockd.target import lockable_anywhere

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _digest(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value if _SHA256.fullmatch(value) else None


def _requires_python(text: object) -> SpecifierSet | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return parse_specifier(text)
    except InvalidSpecifier:
        return None


def _reference_json(body: str, page_url: str, project: str) -> ProjectPage:
    name = canonicalize_name(project)
    files: list[DistFile] = []
    foreign: set[Version] = set()
    for entry in json.loads(body).get("files", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        url = urldefrag(urljoin(page_url, entry["url"]))[0]
        filename = str(entry.get("filename") or url.rsplit("/", 1)[-1])
        try:
            if filename.endswith(".whl"):
                parsed, version, _build, tags = parse_wheel_filename(filename)
                kind = "wheel"
            elif filename.endswith((".tar.gz", ".zip")):
                parsed, version = parse_sdist_filename(filename)
                tags, kind = frozenset(), "sdist"
            else:
                continue
        except ValueError:
            continue
        if parsed != name:
            continue
        if kind == "wheel" and not lockable_anywhere(tags):
            foreign.add(version)
            continue
        hashes = entry.get("hashes")
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        yanked = entry.get("yanked")
        size = entry.get("size")
        has_metadata = metadata is True or isinstance(metadata, dict)
        files.append(
            DistFile.of(
                name=name,
                version=version,
                filename=filename,
                url=url,
                kind="wheel" if kind == "wheel" else "sdist",
                tags=tags,
                sha256=_digest(hashes.get("sha256")) if isinstance(hashes, dict) else None,
                size=size if isinstance(size, int) else None,
                requires_python=_requires_python(entry.get("requires-python")),
                yanked="" if yanked is True else yanked if isinstance(yanked, str) else None,
                upload_time=parse_upload_time(entry.get("upload-time")),
                metadata_url=url + ".metadata" if has_metadata else None,
                metadata_sha256=_digest(metadata.get("sha256")) if isinstance(metadata, dict) else None,
                index_url=page_url,
            )
        )
    return ProjectPage(name, page_url, tuple(files), frozenset(foreign - {f.version for f in files}))


# Every field of a file, `index_url` included (equality leaves it out).
_FILE_FIELDS = (
    "name",
    "version",
    "filename",
    "url",
    "kind",
    "tags",
    "sha256",
    "size",
    "requires_python",
    "yanked",
    "upload_time",
    "metadata_url",
    "metadata_sha256",
    "index_url",
)


def _fields(page: ProjectPage) -> tuple[Any, ...]:
    files = [tuple(getattr(f, name) for name in _FILE_FIELDS) for f in page.files]
    return page.name, page.index_url, files, page.foreign_versions


MALFORMED = {
    "files": [
        "not an entry",
        {"filename": "demo-1.0.tar.gz"},
        {"filename": "demo-1.0.tar.gz", "url": 7},
        {"url": "../../files/demo-1.1-py3-none-any.whl#sha256=" + "a" * 64, "hashes": []},
        {"filename": "", "url": "demo-1.2.zip?x=1", "hashes": {"sha256": "A" * 64}, "size": "12"},
        {"filename": 12, "url": "https://files.example/12"},
        {"filename": "demo-1.3-1-py3-none-any.whl", "url": "https://h/demo-1.3-1-py3-none-any.whl"},
        {"filename": "demo-1.3-x-py3-none-any.whl", "url": "https://h/x.whl", "yanked": False},
        {"filename": "demo-1.4-cp27-cp27mu-linux_ppc64le.whl", "url": "https://h/a.whl"},
        {"filename": "Demo-1.5-py3-none-any.whl", "url": "https://h/Demo 1.5.whl", "yanked": "bad"},
        {"filename": "demo-1.6.tar.gz", "url": "https://h/demo-1.6.tar.gz", "hashes": {"sha256": "g" * 64}},
        {"filename": "demo-1.7.tar.gz", "url": "https://h/d.tar.gz", "core-metadata": {"sha256": 3}},
        {"filename": "demo-1.8.tar.gz", "url": "https://h/e.tar.gz", "dist-info-metadata": True},
        {"filename": "demo-1.9.tar.gz", "url": "https://h/f.tar.gz", "requires-python": ">=3.6.*"},
        {"filename": "demo-2.0.tar.gz", "url": "https://h/g.tar.gz", "upload-time": "2024-13-01T00:00Z"},
        {"filename": "demo-2.1.tar.gz", "url": "https://h/h.tar.gz", "upload-time": "2024-01-01T00:00:00Z"},
        {"filename": "demo-2.2.egg", "url": "https://h/demo-2.2.egg"},
        {"filename": "other-1.0.tar.gz", "url": "https://h/other-1.0.tar.gz"},
    ]
}


def test_malformed_entries_parse_as_the_reference_does() -> None:
    body = json.dumps(MALFORMED)
    url = "https://pypi.example/simple/demo/"
    expected = _reference_json(body, url, "demo")
    assert len(expected.files) > 5
    assert _fields(parse_json_page(body, url, "demo")) == _fields(expected)


def test_an_unjoinable_url_fails_the_page_as_the_reference_does() -> None:
    body = json.dumps({"files": [{"filename": "demo-1.0.tar.gz", "url": "https://[::1/demo-1.0.tar.gz"}]})
    for parse in (_reference_json, parse_json_page):
        with pytest.raises(ValueError, match="IPv6"):
            parse(body, "https://pypi.example/simple/demo/", "demo")


def test_every_fixture_page_parses_as_the_reference_does(fixture_index: WatchedIndex) -> None:
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    with httpx.Client() as client:
        root = client.get(fixture_index.pypi_url, headers=accept).json()
        names = [project["name"] for project in root["projects"]]
        assert len(names) > 50
        for name in names:
            url = fixture_index.pypi_url + canonicalize_name(name) + "/"
            body = client.get(url, headers=accept).text
            page = parse_json_page(body, url, name)
            assert _fields(page) == _fields(_reference_json(body, url, name)), name
            # The HTML page lists the same files; only fields HTML cannot carry differ.
            html = client.get(url, headers={"Accept": "text/html"}).text
            html_files = {f.filename: f for f in parse_html_page(html, url, name).files}
            assert set(html_files) == {f.filename for f in page.files}, name


# File names and URLs of every kind a page rule tells apart: an sdist, a wheel, a wheel no
# target installs, a file pip never installs, none; absolute, relative, with a query, unquoted.
_FILENAMES = st.sampled_from(
    ["demo-1.0.tar.gz", "demo-1.1-py3-none-any.whl", "demo-2.0-cp27-cp27mu-linux_ppc64le.whl", "x.egg", ""]
)
_URLS = st.sampled_from(["https://h/f", "../../files/f#sha256=" + "b" * 64, "f?x=1", "https://h/a b"])
# Values an index might send for each key: what PEP 691 says, and what it does not.
_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
_HASHES = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"sha256": st.sampled_from(["a" * 64, "A" * 64, "g" * 64, "", None, 3])}
    ),
    _ODD,
)
_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(
            _URLS,
            _ODD,
        ),
        "filename": st.one_of(
            _FILENAMES,
            _ODD,
        ),
        "hashes": _HASHES,
        "size": _ODD,
        "requires-python": st.one_of(st.sampled_from([">=3.8", ">=3.6.*", " "]), _ODD),
        "yanked": _ODD,
        "upload-time": st.one_of(st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-01T00:00Z"]), _ODD),
        "core-metadata": _HASHES,
        "dist-info-metadata": _HASHES,
        "provenance": _ODD,
    },
)


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(st.one_of(_ENTRY, _ODD), max_size=6), extra=st.booleans())
def test_any_page_parses_as_the_reference_does(entries: list[object], extra: bool) -> None:
    """The typed fast decode and the tolerant one agree with the reference on any shape of page."""
    data: dict[str, object] = {"meta": {"api-version": "1.1"}, "files": entries}
    if extra:
        data["versions"] = ["1.0"]
    body = json.dumps(data)
    url = "https://pypi.example/simple/demo/"
    assert _fields(parse_json_page(body, url, "demo")) == _fields(_reference_json(body, url, "demo"))
    assert _fields(parse_json_page(body.encode(), url, "demo")) == _fields(_reference_json(body, url, "demo"))


def test_json_that_only_json_loads_reads_still_parses() -> None:
    """NaN and UTF-16 are not JSON msgspec decodes; the page parsed before, so it still does."""
    url = "https://pypi.example/simple/demo/"
    body = '{"files": [{"filename": "demo-1.0.tar.gz", "url": "https://h/d.tar.gz", "size": NaN}]}'
    page = parse_json_page(body, url, "demo")
    assert [f.filename for f in page.files] == ["demo-1.0.tar.gz"]
    assert page.files[0].size is None
    assert _fields(parse_json_page(body.encode("utf-16"), url, "demo")) == _fields(page)


def test_a_well_formed_page_is_not_decoded_by_json_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyPI's pages take the typed decode: the tolerant path is for pages that need it."""

    entry = {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": "https://h/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": "c" * 64},
        "requires-python": ">=3.8",
        "core-metadata": {"sha256": "d" * 64},
        "size": 10,
        "upload-time": "2024-01-01T00:00:00.123456Z",
        "yanked": False,
        "provenance": None,
    }
    body = json.dumps({"meta": {"api-version": "1.4"}, "name": "demo", "files": [entry], "versions": ["1.0"]})
    expected = _reference_json(body, "https://pypi.example/simple/demo/", "demo")
    monkeypatch.setattr(json_page, "json", _NoJson())
    page = parse_json_page(body, "https://pypi.example/simple/demo/", "demo")
    assert _fields(page) == _fields(expected)
    assert page.files[0].metadata_sha256 == "d" * 64


_SHA = st.sampled_from(["a" * 64, "A" * 64, "g" * 64, ""])
_TYPED_HASHES = st.one_of(
    st.none(), st.fixed_dictionaries({}, optional={"sha256": st.one_of(st.none(), _SHA)})
)
# Every key as PEP 691 types it (present, absent or null): the pages the typed decode takes.
_TYPED_ENTRY = st.fixed_dictionaries(
    {"url": _URLS},
    optional={
        "filename": st.one_of(
            st.none(),
            _FILENAMES,
        ),
        "hashes": _TYPED_HASHES,
        "size": st.one_of(st.none(), st.integers(min_value=0, max_value=2**70)),
        "requires-python": st.one_of(st.none(), st.sampled_from([">=3.8", ">=3.6.*", " ", ""])),
        "yanked": st.one_of(st.none(), st.booleans(), st.text(max_size=4)),
        "upload-time": st.one_of(
            st.none(), st.sampled_from(["2024-01-01T00:00:00Z", "2024-13-01T00:00Z", ""])
        ),
        "core-metadata": st.one_of(st.booleans(), _TYPED_HASHES),
        "dist-info-metadata": st.one_of(st.booleans(), _TYPED_HASHES),
        # Any JSON at all: a key lockd does not read is skipped, whatever it holds.
        "provenance": st.one_of(
            _ODD.filter(lambda v: v not in (float("inf"), float("-inf"))),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ),
    },
)


class _NoJson:
    """Stands in for the json module where a page must not reach `json.loads`."""

    @staticmethod
    def loads(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("json.loads decoded a well-typed page")


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(_TYPED_ENTRY, max_size=6))
def test_any_well_typed_page_takes_the_typed_decode_and_agrees(entries: list[object]) -> None:
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries})
    url = "https://pypi.example/simple/demo/"
    expected = _fields(_reference_json(body, url, "demo"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_page, "json", _NoJson())
        assert _fields(parse_json_page(body, url, "demo")) == expected
