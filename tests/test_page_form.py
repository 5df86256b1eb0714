"""`lockd.simple.page_form`: a parsed page's form reads back exactly as the page parsed, or not at all."""

from __future__ import annotations

import hashlib
import json
import marshal
import struct
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import NormalizedName

from fixtures.served_index import WatchedIndex
from lockd.errors import IndexUnavailable
from lockd.simple import ProjectPage, parse_html_page, parse_json_page
from lockd.simple.files import files_text_length
from lockd.simple.page_form import decode_page, encode_page
from lockd.simple.page_parse import page_form, parse_page
from lockd.simple.parser_identity import parser_identity
from tests.support import json_page_entries

_SOURCE = json.dumps(["https://i/simple/demo/", "demo", "0" * 64, "application/vnd.pypi.simple.v1+json"])
_HEAD = len(b"lockd-page-form\x01") + 32  # magic, then the payload's sha256


def _reads_back(page: ProjectPage) -> bytes:
    """The page's form, after checking it decodes to a page equal to `page` in every field."""
    form = encode_page(page, _SOURCE)
    assert form is not None
    decoded = decode_page(form, _SOURCE)
    assert decoded is not None
    # Counted from the form's columns as the files count it, their details still pending.
    assert files_text_length(decoded) == sum(f.text_length() for f in decoded.files)
    assert decoded == page
    assert decoded.foreign_versions == page.foreign_versions
    # `DistFile` equality leaves the listing page out; the form keeps it too.
    assert [f.index_url for f in decoded.files] == [f.index_url for f in page.files]
    return form


def test_every_page_of_the_fixture_index_reads_back_exactly(fixture_index: WatchedIndex) -> None:
    pages: list[ProjectPage] = []
    json_type = {"Accept": "application/vnd.pypi.simple.v1+json"}
    with httpx.Client(timeout=10.0) as http:
        listing = http.get(fixture_index.pypi_url, headers=json_type).json()
        for project in listing["projects"]:
            url = f"{fixture_index.pypi_url}{project['name']}/"
            pages.append(parse_json_page(http.get(url, headers=json_type).content, url, project["name"]))
        for name in ("torch", "numpy"):
            url = f"{fixture_index.variant_url('cu124')}{name}/"
            response = http.get(url)
            if response.status_code == 200:
                pages.append(parse_html_page(response.content, url, name))
    for page in pages:
        _reads_back(page)
    files = [f for page in pages for f in page.files]
    # The pages cover what a form must carry: yanks, requires-python, missing hashes, PEP 658
    # metadata, upload times, foreign-only versions, and HTML pages (no size, no upload time).
    assert any(f.yanked is not None for f in files)
    assert any(f.requires_python is not None for f in files)
    assert any(f.metadata_url is not None for f in files)
    assert any(f.upload_time is not None for f in files)
    assert any(f.size is None for f in files)
    assert any(f.sha256 is None for f in files) or any(f.metadata_sha256 is None for f in files)
    assert any(page.index_url.startswith(fixture_index.pytorch_base) for page in pages)
    assert len(pages) > 20


def test_a_pypi_shaped_page_with_foreign_only_versions_reads_back_exactly() -> None:
    wheels = {
        "1.0": ["cp27-cp27mu-manylinux1_x86_64", "cp311-cp311-win32"],  # no target: foreign only
        "2.0": ["cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp311-cp311-win_amd64"],
        "2.1": ["py3-none-any"],
    }
    entries: list[dict[str, object]] = []
    for version, tags in wheels.items():
        for tag in tags:
            filename = f"demo_pkg-{version}-{tag}.whl"
            entries.append(
                {
                    "filename": filename,
                    "url": f"https://files.example/packages/ab/cd/{filename}",
                    "hashes": {"sha256": "ab" * 32} if version != "2.1" else {},
                    "requires-python": ">=3.9",
                    "size": 1024,
                    "upload-time": "2024-10-18T15:21:02.123456Z",
                    "yanked": version == "2.0" and "broken",
                    "core-metadata": {"sha256": "cd" * 32},
                }
            )
    entries.append(
        {"filename": "demo_pkg-2.1.tar.gz", "url": "../../packages/demo_pkg-2.1.tar.gz", "yanked": True}
    )
    # A URL that does not end in its filename: stored whole.
    entries.append(
        {"filename": "demo_pkg-2.1-py2.py3-none-any.whl", "url": "https://mirror.example/get?id=7"}
    )
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": entries})
    page = parse_json_page(body, "https://pypi.example/simple/demo-pkg/", "demo-pkg")
    assert page.files[-1].url == "https://mirror.example/get?id=7"
    assert {str(v) for v in page.foreign_versions} == {"1.0"}
    assert {f.yanked for f in page.files} == {"broken", None, ""}
    _reads_back(page)


_WHEEL_TAGS = st.sampled_from(
    [
        "py3-none-any",
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp312-abi3-macosx_11_0_arm64",
        "cp27-cp27mu-manylinux1_x86_64",  # no target: a foreign version
        "cp311-cp311-win32",  # no target
        "1-cp311-cp311-musllinux_1_2_x86_64",  # a build tag
    ]
)
_VERSIONS = st.sampled_from(["1.0", "1.0.0", "2.0rc1", "1!3.0.post2", "0.1.dev3+local.7", "1.0-1", "bad!"])
_FILENAMES = st.one_of(
    st.builds(lambda v, t: f"demo-{v}-{t}.whl", _VERSIONS, _WHEEL_TAGS),
    st.builds(lambda v, s: f"demo-{v}{s}", _VERSIONS, st.sampled_from([".tar.gz", ".zip"])),
    st.sampled_from(["demo-1.0.egg", "other-1.0.tar.gz", "demo-1.0-py3-none-any.whl.metadata"]),
)
_SHA = st.sampled_from(["a" * 64, "B" * 64, "not-a-digest", 7])
_OPTIONAL = {
    "hashes": st.one_of(st.builds(lambda s: {"sha256": s}, _SHA), st.just({}), st.just("x")),
    "requires-python": st.sampled_from([">=3.9", ">=3.8, <4", "~=3.10", ">=3.6.*", "", " ", 3]),
    "size": st.one_of(st.integers(-1, 2**70), st.just("12")),
    "yanked": st.one_of(st.booleans(), st.text(max_size=8), st.just(None)),
    "upload-time": st.sampled_from(
        ["2024-10-18T15:21:02.123456Z", "2024-10-18T15:21:02+02:00", "2024-10-18T15:21:02", "nope", ""]
    ),
    "core-metadata": st.one_of(st.booleans(), st.builds(lambda s: {"sha256": s}, _SHA), st.just({})),
    "dist-info-metadata": st.one_of(st.booleans(), st.just({"sha256": "c" * 64})),
}


def _urls(filename: str) -> list[str]:
    return [
        f"https://files.example/p/{filename}",
        f"../../p/{filename}",
        f"{filename}#x",
        "https://files.example/p/another-name",  # a URL that does not end in the filename
        "https://files.example/p/",
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(json_page_entries(_FILENAMES, _urls, _OPTIONAL), max_size=12),
    st.sampled_from(["demo", "Demo_Pkg"]),
)
def test_generated_pages_read_back_exactly(entries: list[dict[str, object]], project: str) -> None:
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries})
    name = project.lower().replace("_", "-")
    page = parse_json_page(body, f"https://i/simple/{name}/", project)
    _reads_back(page)


def test_sizes_no_array_holds_and_missing_details_read_back_exactly() -> None:
    # Packed, a size is a signed 64-bit number and -1 stands for none: a page with a negative
    # or a larger size keeps its sizes one by one instead, as the index wrote them.
    def page(*sizes: object) -> ProjectPage:
        entries = [
            {
                "filename": f"demo-1.{n}-py3-none-any.whl",
                "url": f"https://f/demo-1.{n}-py3-none-any.whl",
                "size": size,
            }
            for n, size in enumerate(sizes)
        ]
        return parse_json_page(json.dumps({"files": entries}), "https://i/simple/demo/", "demo")

    for sizes in ((1, None, 0, 2**62), (-1, 5), (2**64, 1), (None, None)):
        decoded = decode_page(_reads_back(page(*sizes)), _SOURCE)
        assert decoded is not None and [f.size for f in decoded.files] == list(sizes)
    # Non-ASCII URLs, and hashes and upload times given for some files only.
    entries = [
        {"filename": "demo-1.0-py3-none-any.whl", "url": "https://f/ü/démo/demo-1.0-py3-none-any.whl",
         "hashes": {"sha256": "ab" * 32}, "upload-time": "2026-01-01T00:00:00Z"},
        {"filename": "demo-1.1-py3-none-any.whl", "url": "https://f/demo-1.1-py3-none-any.whl"},
    ]  # fmt: skip
    page_of_two = parse_json_page(json.dumps({"files": entries}), "https://i/simple/demo/", "demo")
    decoded = decode_page(_reads_back(page_of_two), _SOURCE)
    assert decoded is not None and len(decoded.files) == 2
    assert [(f.filename, f.url, f.sha256, f.upload_time) for f in decoded.files] == [
        (f.filename, f.url, f.sha256, f.upload_time) for f in page_of_two.files
    ]


def test_a_page_a_form_cannot_carry_exactly_gets_no_form() -> None:
    # JSON `true` as a size: the parser keeps it (a bool is an int); the form refuses a bool there.
    body = json.dumps(
        {"files": [{"filename": "demo-1.0.tar.gz", "url": "https://f/demo-1.0.tar.gz", "size": True}]}
    )
    page = parse_json_page(body, "https://i/simple/demo/", "demo")
    assert page.files[0].size is True
    assert encode_page(page, _SOURCE) is None


def _page() -> ProjectPage:
    entries = [
        {"filename": f"demo-1.{n}-py3-none-any.whl", "url": f"https://f/demo-1.{n}-py3-none-any.whl"}
        for n in range(5)
    ]
    entries.append(
        {"filename": "demo-2.0.tar.gz", "url": "https://f/demo-2.0.tar.gz", "requires-python": ">=3.9"}
    )
    return parse_json_page(json.dumps({"files": entries}), "https://i/simple/demo/", "demo")


def _reform(form: bytes, change: Callable[[list[object]], object]) -> bytes:
    """`form` with its fields changed, written with a valid digest: damage only the checks can catch."""
    fields = list(marshal.loads(form[_HEAD:]))
    change(fields)
    payload = marshal.dumps(tuple(fields))
    return form[: _HEAD - 32] + hashlib.sha256(payload).digest() + payload


def _set(index: int, value: object) -> Callable[[list[object]], None]:
    def change(fields: list[object]) -> None:
        fields[index] = value

    return change


def _ends(*ends: int) -> bytes:
    return struct.pack(f"<{len(ends)}I", *ends)


def test_damaged_forms_and_forms_for_anything_else_are_misses() -> None:
    form = _reads_back(_page())
    damaged = [
        b"",
        form[:20],
        form[: len(form) // 2],  # truncated
        form[:-1],
        form + b"\0",
        b"x" + form[1:],  # another magic
        form[:60] + bytes([form[60] ^ 1]) + form[61:],  # a flipped bit: the digest differs
        form[:_HEAD] + b"\xff" * (len(form) - _HEAD),
    ]
    for bad in damaged:
        assert decode_page(bad, _SOURCE) is None
    # Another body, content type, URL, project or limit: another source.
    assert decode_page(form, _SOURCE.replace("0" * 64, "1" * 64)) is None
    assert decode_page(form, _SOURCE, max_bytes=len(form) - 1) is None
    assert decode_page(form, _SOURCE, max_bytes=len(form)) == _page()
    # Intact, but not what this parser wrote: every one a miss, never an exception or another page.
    reformed = [
        _reform(form, _set(0, "another parser")),
        _reform(form, lambda f: f.pop()),
        _reform(form, _set(2, 7)),  # the project name
        _reform(form, _set(5, ("1.0", "not a version"))),
        _reform(form, _set(6, ((("py3", "none"),),))),  # a tag of two parts
        _reform(form, _set(7, ("not a specifier",))),
        _reform(form, _set(8, None)),  # the URL base
        _reform(form, _set(9, (6,))),  # a file stored whole that is not there
        _reform(form, _set(9, ("0",))),
        _reform(form, _set(10, ("a", "b"))),  # filenames: a column of another length
        _reform(form, _set(11, (1, 2, 3, 4, 5, 6))),  # URLs that are not strings
        _reform(form, _set(13, (0, 0, 0, 0, 0, 99))),  # a version index out of range
        _reform(form, _set(13, (0, 0, 0, 0, 0, -1))),
        _reform(form, _set(16, (None, None, None, None, None, 3.5))),  # a size that is a float
        _reform(form, _set(19, (5,) * 6)),  # upload times that are not text (any text is, as written)
        _reform(form, _set(20, (False,) * 6)),  # metadata: only True or a URL
        # The packed columns (`lockd.simple.packed_columns`): filenames, URLs, kinds, versions,
        # tags, hashes, sizes, upload times.
        _reform(form, _set(10, ("demo", _ends(1, 2, 3, 4, 5, 6), b""))),  # ends past the text
        _reform(form, _set(10, ("abcdef", _ends(1, 2, 3, 4, 5), b""))),  # five ends for six files
        _reform(form, _set(10, ("abcdef", _ends(1, 2, 3, 4, 5, 6), b"\0" * 6))),  # None: not a filename
        _reform(form, _set(15, ("abcdef", _ends(1, 2, 3, 4, 5, 6), b"\2" * 6))),  # a mask of 0 and 1 only
        _reform(form, _set(15, ("abcdef", _ends(1, 2, 3, 4, 5, 6)))),
        _reform(form, _set(15, (b"abcdef", _ends(1, 2, 3, 4, 5, 6), b""))),
        _reform(form, _set(13, _ends(0, 0, 0, 0, 0, 99))),  # a version index out of range
        _reform(form, _set(13, _ends(0, 0, 0, 0, 0))),
        _reform(form, _set(16, struct.pack("<6q", 1, 2, 3, 4, 5, -2))),  # -1 alone stands for None
        _reform(form, _set(16, struct.pack("<5q", 1, 2, 3, 4, 5))),
        _reform(form, _set(16, 7)),
    ]
    for bad in reformed:
        assert decode_page(bad, _SOURCE) is None
        assert decode_page(bad, _SOURCE, from_pipe=True) is None  # every field checked all the same
    assert decode_page(_reform(form, lambda f: None), _SOURCE) == _page()
    # From the page child's pipe the digest is not computed again; nothing else is skipped.
    flipped = form[: len(b"lockd-page-form\x01")] + bytes(32) + form[_HEAD:]
    assert decode_page(flipped, _SOURCE) is None
    assert decode_page(flipped, _SOURCE, from_pipe=True) == _page()
    assert decode_page(flipped[:-1], _SOURCE, from_pipe=True) is None


def test_the_parser_identity_names_the_parsing_code() -> None:
    identity = parser_identity()
    assert identity is not None and len(identity) == 64


_IDENTITY_PROBE = """
import json, sys
from lockd.simple.parser_identity import parser_identity
before = parser_identity()
loaded = [name for name in ("html.parser", "lockd.simple.html_page") if name in sys.modules]
import lockd.simple.html_page
parser_identity.cache_clear()
print(json.dumps({"before": before, "loaded": loaded, "after": parser_identity()}))
"""


def test_the_parser_identity_reads_the_html_parser_s_source_without_loading_it() -> None:
    # A run on PyPI alone parses no HTML page: html.parser is not loaded for the identity either,
    # and the identity is the same whether the HTML parser was loaded or not.
    done = subprocess.run(
        [sys.executable, "-c", _IDENTITY_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert found["before"] is not None
    assert found["before"] == found["after"] == parser_identity()


def test_a_page_holding_values_the_form_does_not_carry_gets_no_form() -> None:
    page = ProjectPage(_page().name, object(), ())  # type: ignore[arg-type]
    assert encode_page(page, _SOURCE) is None


def _worked_out(page: ProjectPage) -> list[bool]:
    return [type(file._details) is tuple for file in page.files]


def test_a_form_is_written_and_read_without_working_out_any_file_s_details() -> None:
    """Writing a fresh page's form keeps its files' details as the index wrote them, and so does reading it."""
    entries = [
        {
            "filename": f"demo-1.{minor}-py3-none-any.whl",
            "url": f"../../files/demo-1.{minor}-py3-none-any.whl",
            "hashes": {"sha256": "AB" * 32},
            "upload-time": "2024-10-18T15:21:02Z",
            "core-metadata": {"sha256": "cd" * 32},
        }
        for minor in range(4)
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "files": entries})
    page = parse_json_page(body, "https://i/simple/demo/", "demo")
    form = encode_page(page, _SOURCE)
    assert form is not None
    assert not any(_worked_out(page))
    again = decode_page(form, _SOURCE)
    assert again is not None and not any(_worked_out(again))
    # Worked out on first read, by the parser's rules: the same values as the parse gives.
    assert [f.url for f in again.files] == [
        f"https://i/files/demo-1.{minor}-py3-none-any.whl" for minor in range(4)
    ]
    assert again.files == page.files and all(_worked_out(again))
    assert again.files[0].sha256 == "ab" * 32 and again.files[0].upload_time is not None


def test_a_page_without_files_reads_back_exactly_with_or_without_foreign_versions() -> None:
    # No file at all: the columns are empty tuples (what `zip(*files)` cannot transpose).
    empty = parse_json_page(
        json.dumps({"meta": {"api-version": "1.1"}, "files": []}), "https://i/simple/demo/", "demo"
    )
    assert empty.files == () and not empty.foreign_versions
    _reads_back(empty)
    only_foreign = parse_json_page(
        json.dumps(
            {
                "meta": {"api-version": "1.1"},
                "files": [{"filename": "demo-1.0-cp27-cp27mu-manylinux1_x86_64.whl", "url": "x/demo.whl"}],
            }
        ),
        "https://i/simple/demo/",
        "demo",
    )
    assert only_foreign.files == () and only_foreign.foreign_versions
    _reads_back(only_foreign)


def test_the_child_s_form_reads_each_content_type_as_parse_page_does() -> None:
    # `page_form` is what the page child answers: JSON straight to its form, HTML through its page.
    url = "https://i/simple/demo/"
    html = b'<a href="https://f/demo-1.0.tar.gz#sha256=' + b"a" * 64 + b'">demo-1.0.tar.gz</a>'
    json_body = json.dumps({"files": [{"filename": "demo-1.0.tar.gz", "url": "https://f/demo-1.0.tar.gz"}]})
    for body, content_type in (
        (html, "text/html"),
        (json_body.encode(), "application/vnd.pypi.simple.v1+json"),
    ):
        name = NormalizedName("demo")
        page = parse_page(body, content_type, url, name, url, max_files=10)
        form = page_form(body, content_type, url, name, url, max_files=10, source=_SOURCE)
        assert form is not None
        assert decode_page(form, _SOURCE) == page
        assert len(page.files) == 1
    with pytest.raises(IndexUnavailable, match="not a Simple API page"):
        page_form(html, "text/plain", url, NormalizedName("demo"), url, max_files=10, source=_SOURCE)
    bad_url = json.dumps({"files": [{"filename": "demo-1.0.tar.gz", "url": "http://[::1/demo-1.0.tar.gz"}]})
    with pytest.raises(IndexUnavailable, match="cannot parse"):
        page_form(
            bad_url.encode(),
            "application/json",
            url,
            NormalizedName("demo"),
            url,
            max_files=10,
            source=_SOURCE,
        )
