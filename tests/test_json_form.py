"""`lockd.simple.json_form`: a JSON page straight to its form is the form of the page the parser gives."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.served_index import WatchedIndex
from lockd.deadline import deadline_scope
from lockd.errors import ResolutionTimeout, ResponseTooLarge
from lockd.simple import ProjectPage, parse_json_page
from lockd.simple.json_form import json_page_form
from lockd.simple.page_form import decode_page, encode_page
from tests.support import json_page_entries

_SOURCE = json.dumps(["https://i/simple/demo/", "demo", "0" * 64, "application/vnd.pypi.simple.v1+json"])


def _same_form(body: str | bytes, page_url: str, project: str) -> ProjectPage | None:
    """Checks `json_page_form` against `encode_page(parse_json_page(...))`; the page, if it has a form."""
    try:
        page = parse_json_page(body, page_url, project)
    except Exception as exc:  # whatever the parser raises, the form raises too
        with pytest.raises(type(exc)):
            json_page_form(body, page_url, project, _SOURCE)
        return None
    form = json_page_form(body, page_url, project, _SOURCE)
    if encode_page(page, _SOURCE) is None:
        assert form is None
        return None
    assert form is not None
    decoded = decode_page(form, _SOURCE)
    assert decoded is not None
    # Every field: `DistFile` equality reads the details and leaves the listing page out.
    assert decoded == page
    assert decoded.foreign_versions == page.foreign_versions
    assert [f.index_url for f in decoded.files] == [f.index_url for f in page.files]
    assert [f.raw_details() for f in decoded.files] == [f.raw_details() for f in page.files]
    return page


def test_every_page_of_the_fixture_index(fixture_index: WatchedIndex) -> None:
    json_type = {"Accept": "application/vnd.pypi.simple.v1+json"}
    kept = 0
    with httpx.Client(timeout=10.0) as http:
        listing = http.get(fixture_index.pypi_url, headers=json_type).json()
        for project in listing["projects"]:
            url = f"{fixture_index.pypi_url}{project['name']}/"
            page = _same_form(http.get(url, headers=json_type).content, url, project["name"])
            assert page is not None
            kept += len(page.files)
    assert kept > 100


_TAGS = ["py3-none-any", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp27-cp27mu-manylinux1_x86_64",
         "cp311-cp311-win32", "1-cp311-cp311-musllinux_1_2_x86_64", "bad-tag", "cp311-cp311-macosx_11_0_arm64"]  # fmt: skip
_VERSIONS = ["1.0", "1.0.0", "2.0rc1", "1!3.0.post2", "0.1.dev3+local.7", "1.0-1", "bad!", "v1.0", "1.0_1"]
_FILENAMES = st.one_of(
    st.builds(lambda v, t: f"demo-{v}-{t}.whl", st.sampled_from(_VERSIONS), st.sampled_from(_TAGS)),
    st.builds(lambda v, s: f"demo-{v}{s}", st.sampled_from(_VERSIONS), st.sampled_from([".tar.gz", ".zip"])),
    st.sampled_from(["demo-1.0.egg", "other-1.0.tar.gz", "Demo-1.0-py3-none-any.whl", "demo_x-1.0.tar.gz",
                     "demo-1.0-py3-none-any.whl.metadata", "demo-1.0-0-py3-none-any.whl", "demo.whl", ""]),
)  # fmt: skip
_METADATA: st.SearchStrategy[object] = st.one_of(
    st.booleans(), st.just(None), st.just({}), st.just({"sha256": "c" * 64}), st.just("x")
)
_OPTIONAL = {
    "hashes": st.one_of(
        st.just({"sha256": "a" * 64}), st.just({"sha256": "B" * 64}), st.just({}), st.just("x")
    ),
    "requires-python": st.sampled_from([">=3.9", ">=3.8, <4", ">=3.6.*", "", " ", 3, None]),
    "size": st.one_of(st.integers(-1, 2**70), st.just("12"), st.just(None)),
    "yanked": st.one_of(st.booleans(), st.text(max_size=8), st.just(None)),
    "upload-time": st.sampled_from(["2024-10-18T15:21:02.123456Z", "2024-10-18T15:21:02", "nope", "", None]),
    "core-metadata": _METADATA,
    "dist-info-metadata": _METADATA,
}


def _urls(filename: str) -> list[str]:
    return [f"https://files.example/p/{filename}", f"../../p/{filename}", f"{filename}#x",
            "https://files.example/p/another", "http://[::1", f"https://f.example/{filename}?a=1"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(json_page_entries(_FILENAMES, _urls, _OPTIONAL, odd=True), max_size=12),
    st.sampled_from(["demo", "Demo"]),
)
def test_generated_pages(entries: list[object], project: str) -> None:
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries})
    _same_form(body, "https://i/simple/demo/", project)


def test_a_pypi_shaped_page_with_foreign_and_pep658_files() -> None:
    entries = [
        {"filename": "demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl", "url": "https://f/a/demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl"},
        {"filename": "demo-2.0-py3-none-any.whl", "url": "https://f/b/demo-2.0-py3-none-any.whl",
         "core-metadata": {"sha256": "d" * 64}, "hashes": {"sha256": "e" * 64}, "yanked": "broken"},
        {"filename": "demo-2.0.tar.gz", "url": "../../b/demo-2.0.tar.gz", "dist-info-metadata": True},
        {"url": "https://f/c/demo-3.0-py3-none-any.whl", "requires-python": ">=3.10"},  # named by its URL
    ]  # fmt: skip
    page = _same_form(json.dumps({"files": entries}), "https://i/simple/demo/", "demo")
    assert page is not None
    assert [str(v) for v in page.foreign_versions] == ["1.0"]
    assert [f.metadata_sha256 for f in page.files] == ["d" * 64, None, None]
    assert page.files[1].metadata_url == "https://i/b/demo-2.0.tar.gz.metadata"
    assert page.files[2].filename == "demo-3.0-py3-none-any.whl"


def test_a_page_msgspec_refuses_is_read_as_the_parser_reads_it() -> None:
    body = '{"files": [{"filename": "demo-1.0.tar.gz", "url": "https://f/demo-1.0.tar.gz", "size": NaN}]}'
    page = _same_form(body, "https://i/simple/demo/", "demo")
    assert page is not None
    assert len(page.files) == 1


def test_limits_and_the_deadline_hold() -> None:
    entries = [{"filename": f"demo-1.{n}.tar.gz", "url": f"https://f/demo-1.{n}.tar.gz"} for n in range(3000)]
    body = json.dumps({"files": entries})
    with pytest.raises(ResponseTooLarge):
        json_page_form(body, "https://i/simple/demo/", "demo", _SOURCE, max_files=2999)
    assert json_page_form(body, "https://i/simple/demo/", "demo", _SOURCE, max_files=3000) is not None
    with (
        deadline_scope(time.monotonic() - 1),
        pytest.raises(ResolutionTimeout, match="parsing https://i/simple/demo/"),
    ):
        json_page_form(body, "https://i/simple/demo/", "demo", _SOURCE)
