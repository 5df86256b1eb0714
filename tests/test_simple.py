"""`lockd.simple`: realistic PEP 691 JSON and PEP 503 HTML project pages as data."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import urldefrag, urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from lockd.deadline import deadline_scope
from lockd.errors import ResolutionTimeout, ResponseTooLarge
from lockd.simple import json_page, parse_html_page, parse_json_page
from lockd.simple.files import check_urls
from lockd.target import PLATFORMS, Target

SHA_A = "a" * 64
SHA_B = "b" * 64

PYPI_JSON = {
    "meta": {"api-version": "1.1", "_last-serial": 1},
    "name": "MarkupSafe",
    "versions": ["2.1.5", "3.0.2"],
    "files": [
        {
            "filename": "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "url": "https://files.pythonhosted.org/packages/ab/MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "hashes": {"sha256": SHA_A.upper()},
            "requires-python": ">=3.9",
            "size": 23322,
            "upload-time": "2024-10-18T15:21:02.123456Z",
            "yanked": False,
            "core-metadata": {"sha256": SHA_B},
            "data-dist-info-metadata": {"sha256": SHA_B},
        },
        {
            "filename": "markupsafe-3.0.2.tar.gz",
            "url": "../../packages/cd/markupsafe-3.0.2.tar.gz",
            "hashes": {"sha256": SHA_B},
            "requires-python": ">=3.9",
            "size": 20537,
            "upload-time": "2024-10-18T15:21:54Z",
            "yanked": "broken on 3.13",
        },
        {
            "filename": "MarkupSafe-2.1.5-py3-none-any.whl",
            "url": "https://files.example/MarkupSafe-2.1.5-py3-none-any.whl",
            "hashes": {},
            "yanked": True,
            "core-metadata": True,
        },
        {"filename": "MarkupSafe-0.9.egg", "url": "https://files.example/MarkupSafe-0.9.egg", "hashes": {}},
        {"filename": "not-a-wheel.whl", "url": "https://files.example/not-a-wheel.whl", "hashes": {}},
        {
            "filename": "jinja2-3.1.4-py3-none-any.whl",
            "url": "https://files.example/jinja2-3.1.4-py3-none-any.whl",
            "hashes": {},
        },
        {
            "filename": "MarkupSafe-3.0.2-cp311-cp311-win_amd64.whl",
            "url": "x.whl",
            "hashes": {},
            "requires-python": ">=3.9,<<4",
        },
    ],
}


def test_pep691_json_page() -> None:
    page = parse_json_page(
        json.dumps(PYPI_JSON).encode(), "https://pypi.org/simple/markupsafe/", "MarkupSafe"
    )
    assert page.name == "markupsafe"
    files = {f.filename: f for f in page.files}
    assert "MarkupSafe-0.9.egg" not in files and "not-a-wheel.whl" not in files
    assert "jinja2-3.1.4-py3-none-any.whl" not in files  # another project's file on this page
    wheel = files["MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    assert (wheel.name, wheel.version, wheel.kind) == ("markupsafe", Version("3.0.2"), "wheel")
    assert Tag("cp311", "cp311", "manylinux2014_x86_64") in wheel.tags
    assert wheel.sha256 == SHA_A  # lower-cased
    assert wheel.size == 23322
    assert wheel.requires_python == SpecifierSet(">=3.9")
    assert wheel.upload_time == datetime(2024, 10, 18, 15, 21, 2, 123456, tzinfo=UTC)
    assert not wheel.is_yanked
    assert wheel.metadata_url == wheel.url + ".metadata" and wheel.metadata_sha256 == SHA_B
    sdist = files["markupsafe-3.0.2.tar.gz"]
    assert sdist.kind == "sdist" and sdist.tags == frozenset()
    assert sdist.url == "https://pypi.org/packages/cd/markupsafe-3.0.2.tar.gz"  # relative to the page
    assert sdist.yanked == "broken on 3.13" and sdist.is_yanked
    assert sdist.metadata_url is None
    old = files["MarkupSafe-2.1.5-py3-none-any.whl"]
    assert old.yanked == "" and old.is_yanked  # yanked without a reason
    assert old.sha256 is None
    assert old.metadata_url == old.url + ".metadata" and old.metadata_sha256 is None
    # an unparseable requires-python is ignored, as pip ignores it: the file stays installable
    bad = files["MarkupSafe-3.0.2-cp311-cp311-win_amd64.whl"]
    assert bad.requires_python is None
    assert page.versions == {Version("3.0.2"), Version("2.1.5")}


PYTORCH_HTML = f"""<!DOCTYPE html>
<html>
  <body>
    <h1>Links for torch</h1>
    <a href="/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-linux_x86_64.whl#sha256={SHA_A}" data-dist-info-metadata="sha256={SHA_B}" data-core-metadata="sha256={SHA_B}">torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl</a><br/>
    <a href="/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-win_amd64.whl" data-requires-python="&gt;=3.8.0">torch-2.5.1+cu124-cp311-cp311-win_amd64.whl</a><br/>
    <a href="torch-2.4.1%2Bcu124-cp311-cp311-linux_x86_64.whl#sha256={SHA_B}" data-yanked="">torch-2.4.1+cu124-cp311-cp311-linux_x86_64.whl</a><br/>
    <a href="torch-2.4.0%2Bcu124-cp311-cp311-linux_x86_64.whl#md5=0123" data-yanked="bad CUDA link" data-core-metadata="true">torch-2.4.0+cu124-cp311-cp311-linux_x86_64.whl</a><br/>
    <a href="torch-1.0.0-garbage.whl">garbage</a>
    <a>no href</a>
  </body>
</html>
"""


def test_pep503_html_page_as_the_pytorch_index_serves_it() -> None:
    page = parse_html_page(PYTORCH_HTML.encode(), "https://download.pytorch.org/whl/cu124/torch/", "torch")
    assert [f.filename for f in page.files] == [
        "torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl",
        "torch-2.5.1+cu124-cp311-cp311-win_amd64.whl",
        "torch-2.4.1+cu124-cp311-cp311-linux_x86_64.whl",
        "torch-2.4.0+cu124-cp311-cp311-linux_x86_64.whl",
    ]
    linux, windows, yanked, reasoned = page.files
    assert linux.version == Version("2.5.1+cu124") and linux.version.local == "cu124"
    assert (
        linux.url == "https://download.pytorch.org/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-linux_x86_64.whl"
    )
    assert linux.sha256 == SHA_A and linux.size is None
    assert linux.tags == frozenset({Tag("cp311", "cp311", "linux_x86_64")})
    assert linux.metadata_url == linux.url + ".metadata" and linux.metadata_sha256 == SHA_B
    assert linux.upload_time is None and not linux.is_yanked
    assert windows.sha256 is None  # some PyTorch links carry no hash
    assert windows.requires_python == SpecifierSet(">=3.8.0")
    assert windows.metadata_url is None
    assert (
        yanked.url
        == "https://download.pytorch.org/whl/cu124/torch/torch-2.4.1%2Bcu124-cp311-cp311-linux_x86_64.whl"
    )
    assert yanked.yanked == "" and yanked.is_yanked
    assert reasoned.yanked == "bad CUDA link"
    assert reasoned.sha256 is None  # an md5 fragment is not a sha256
    assert reasoned.metadata_url == reasoned.url + ".metadata" and reasoned.metadata_sha256 is None


def test_base_href_and_stray_projects_in_html() -> None:
    body = (
        '<html><head><base href="https://mirror.example/files/"></head><body>'
        f'<a href="numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl#SHA256={SHA_A.upper()}">n</a>'
        '<a href="MarkupSafe-3.0.2-py3-none-any.whl">stray</a>'
        "</body></html>"
    )
    page = parse_html_page(body, "https://download.pytorch.org/whl/cu124/numpy/", "NumPy")
    assert page.name == "numpy"
    (only,) = page.files
    assert only.url.startswith("https://mirror.example/files/numpy-2.1.3-")
    assert only.sha256 == SHA_A


def test_invalid_requires_python_is_ignored_as_pip_does() -> None:
    # Real PyPI: datatest 0.11.1 says `>=2.6.*, !=3.0.*, !=3.1.*`, symengine 0.7.x `>=3.6.*,<4`.
    # pip logs "Ignoring invalid Requires-Python" and keeps the link, so pip and uv pick them.
    body = {
        "meta": {"api-version": "1.1"},
        "name": "datatest",
        "files": [
            {
                "filename": "datatest-0.11.1-py2.py3-none-any.whl",
                "url": "https://files.example/datatest-0.11.1-py2.py3-none-any.whl",
                "hashes": {"sha256": SHA_A},
                "requires-python": ">=2.6.*, !=3.0.*, !=3.1.*",
            }
        ],
    }
    (json_file,) = parse_json_page(json.dumps(body), "https://pypi.org/simple/datatest/", "datatest").files
    html = (
        '<a href="https://files.example/datatest-0.11.1-py2.py3-none-any.whl" '
        'data-requires-python="&gt;=3.6.*">datatest-0.11.1-py2.py3-none-any.whl</a>'
    )
    (html_file,) = parse_html_page(html, "https://pypi.org/simple/datatest/", "datatest").files
    assert json_file.requires_python is None
    assert html_file.requires_python is None


def test_empty_pages() -> None:
    assert (
        parse_json_page(
            b'{"meta": {"api-version": "1.0"}, "name": "x", "files": []}', "https://i/x/", "x"
        ).files
        == ()
    )
    assert parse_html_page(b"<html><body></body></html>", "https://i/x/", "x").files == ()


# -- the memoised parsing agrees with packaging and urllib on every file name and URL ----------

_NAMES = st.sampled_from(["demo_pkg", "Demo.Pkg", "demo-pkg", "de__mo_pkg", "other", "", "demo pkg"])
_VERSIONS = st.sampled_from(["1.0", "1.0.0", "2.0rc1", "1!2.0+cu124", "v1", "1foo", "", "1.0_1"])
_BUILDS = st.sampled_from(["", "-1", "-1foo", "-x1", "-"])
_TAGS = st.sampled_from(
    [
        "py3-none-any",
        "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "cp311.cp312-abi3-linux_x86_64",
        "py3-none",
        "3py-none-any",
        "py3-none-any-x",
        "py3--any",
    ]
)
_FILENAMES = st.one_of(
    st.builds("{}-{}{}-{}.whl".format, _NAMES, _VERSIONS, _BUILDS, _TAGS),
    st.builds("{}-{}{}".format, _NAMES, _VERSIONS, st.sampled_from([".tar.gz", ".zip", ".egg", ".whl"])),
)
_URLS = st.sampled_from(
    [
        "https://files.example/p/{f}",
        "http://files.example/p/{f}",
        "../../p/{f}",
        "/p/{f}",
        "{f}",
        "https://files.example/p/{f}#sha256=ab",
        "https://files.example/p/{f}?x=1",
        "https://files.example/a;b/{f}",
        "https:///p/{f}",
        "https://[::1/p/{f}",
        "https://files.example/p/{f}#",
        "HTTPS://files.example/{f}",
        "https://files.example/p/ {f}",
        "https://files.example/p/\t{f}",
        "https://fïles.example/p/{f}",
        "https://files.example/p/../q/{f}",
        "https://files.example\\p\\{f}",
    ]
)


_EVERY_TARGET = [Target.of(p, f"3.{minor}") for p in PLATFORMS for minor in range(9, 14)]


def _reference_files(entries: list[dict[str, str]], page_url: str) -> list[tuple[object, ...]]:
    """What parse_json_page must find, computed the slow, obvious way with packaging and urllib."""
    found: list[tuple[object, ...]] = []
    for entry in entries:
        filename = entry["filename"]
        try:
            if filename.endswith(".whl"):
                name, version, _build, tags = parse_wheel_filename(filename)
            elif filename.endswith((".tar.gz", ".zip")):
                name, version = parse_sdist_filename(filename)
                tags = frozenset()
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if tags and not any(target.wheel_rank(tags) is not None for target in _EVERY_TARGET):
            continue  # installs on no target lockd locks for
        if name == "demo-pkg":
            # Only a file that is kept has its URL resolved: a bad URL on any other file is no error.
            url = urldefrag(urljoin(page_url, entry["url"]))[0]
            found.append((filename, url, version, tags, SpecifierSet(entry["requires-python"])))
    return found


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(_FILENAMES, _URLS, st.sampled_from([">=3.9", ">=3.8,<4"])),
        max_size=6,
    )
)
def test_json_page_files_match_packaging_and_urljoin(raw: list[tuple[str, str, str]]) -> None:
    entries = []
    for filename, url, requires in raw:
        entries.append({"filename": filename, "url": url.format(f=filename), "requires-python": requires})
    page_url = "https://pypi.example/simple/demo-pkg/"
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo-pkg", "files": entries})
    try:
        expected = _reference_files(entries, page_url)
    except ValueError:  # urllib refuses the URL; so must the page
        with pytest.raises(ValueError):
            parse_json_page(body, page_url, "demo-pkg")
        return
    page = parse_json_page(body, page_url, "Demo.Pkg")
    assert [(f.filename, f.url, f.version, f.tags, f.requires_python) for f in page.files] == expected


def test_wheels_no_target_can_install_are_not_files_but_their_versions_are_known() -> None:
    """cp27, ppc64le, armv7l, win32 wheels can never be pinned: only their versions are kept."""
    files = [
        ("demo_pkg-1.0-cp27-cp27mu-manylinux1_x86_64.whl", "1.0"),
        ("demo_pkg-1.0-cp311-cp311-manylinux_2_17_ppc64le.whl", "1.0"),
        ("demo_pkg-1.0-cp311-cp311-musllinux_1_2_armv7l.whl", "1.0"),
        ("demo_pkg-1.0-cp311-cp311-win32.whl", "1.0"),
        ("demo_pkg-2.0-cp311-cp311-win32.whl", "2.0"),
        ("demo_pkg-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "2.0"),
        ("demo_pkg-2.0-cp313-cp313-macosx_11_0_arm64.whl", "2.0"),
        ("demo_pkg-2.0-cp39-cp39-win_amd64.whl", "2.0"),
        ("demo_pkg-2.0.tar.gz", "2.0"),
    ]
    entries = [{"filename": f, "url": f"https://files.example/{f}", "hashes": {}} for f, _ in files]
    page = parse_json_page(
        json.dumps({"meta": {"api-version": "1.1"}, "files": entries}),
        "https://x/simple/demo-pkg/",
        "demo-pkg",
    )
    assert [f.filename for f in page.files] == [f for f, _ in files[5:]]
    assert page.foreign_versions == {Version("1.0")}
    assert page.versions == {Version("1.0"), Version("2.0")}
    html = "".join(f'<a href="https://files.example/{f}">{f}</a>' for f, _ in files)
    from_html = parse_html_page(html, "https://x/whl/cpu/demo-pkg/", "demo-pkg")
    assert [f.filename for f in from_html.files] == [f for f, _ in files[5:]]
    assert from_html.foreign_versions == {Version("1.0")}


def _json_files(*entries: dict[str, object]) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": list(entries)}).encode()


def _entry(filename: str, **extra: object) -> dict[str, object]:
    return {"filename": filename, "url": f"https://files.example/{filename}", **extra}


def test_hostile_entries_cost_their_file_never_the_page() -> None:
    huge = "1" + "0" * 5000  # past Python's 4,300-digit int limit
    body = _json_files(
        _entry(f"demo-{huge}-py3-none-any.whl"),
        _entry(f"demo-{huge}.tar.gz"),
        _entry(
            "demo-1.0-py3-none-any.whl", hashes={"sha256": "not-a-digest"}, **{"requires-python": f">={huge}"}
        ),
        _entry("demo-1.1-py3-none-any.whl", hashes={"sha256": "Z" * 64}, **{"core-metadata": {"sha256": 7}}),
    )
    files = parse_json_page(body, "https://i/demo/", "demo").files
    assert [(f.filename, f.sha256, f.requires_python, f.metadata_sha256) for f in files] == [
        ("demo-1.0-py3-none-any.whl", None, None, None),
        ("demo-1.1-py3-none-any.whl", None, None, None),
    ]
    html = f'<a href="demo-{huge}-py3-none-any.whl">x</a><a href="demo-1.0-py3-none-any.whl#sha256=xyz">y</a>'
    (only,) = parse_html_page(html, "https://i/demo/", "demo").files
    assert only.filename == "demo-1.0-py3-none-any.whl" and only.sha256 is None


def test_a_page_listing_more_files_than_the_limit_is_refused() -> None:
    entries = [_entry(f"demo-1.{n}-py3-none-any.whl") for n in range(30)]
    assert len(parse_json_page(_json_files(*entries), "https://i/demo/", "demo", max_files=30).files) == 30
    with pytest.raises(ResponseTooLarge, match=r"lists 31 files, more than lockd reads \(30\)") as raised:
        parse_json_page(
            _json_files(*entries, _entry("demo-2.0.tar.gz")), "https://i/demo/", "demo", max_files=30
        )
    assert "LOCKD_MAX_PAGE_FILES" in (raised.value.hint or "")
    html = "".join(f'<a href="demo-1.{n}-py3-none-any.whl">x</a>' for n in range(31))
    with pytest.raises(ResponseTooLarge, match="more than lockd reads"):
        parse_html_page(html, "https://i/demo/", "demo", max_files=30)


def test_a_page_of_too_many_entries_with_escaped_keys_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `"\u0075rl"` is the key "url" to a JSON decoder: counting `"url"` in the text alone let
    # such a page be decoded whole before its length was judged (64 MiB of them: 3.9 million
    # entries).
    escaped = b'{"\\u0075rl":""}'
    body = b'{"meta":{"api-version":"1.1"},"name":"demo","files":[' + b",".join([escaped] * 31) + b"]}"
    assert len(json.loads(body)["files"]) == 31 and body.count(b'"url"') == 0
    decoded: list[object] = []
    decode = json_page._DECODER.decode

    def noted(text: bytes) -> object:
        decoded.append(text)
        return decode(text)

    monkeypatch.setattr(json_page, "_DECODER", SimpleNamespace(decode=noted))
    with pytest.raises(ResponseTooLarge, match=r"lists more files, more than lockd reads \(30\)"):
        parse_json_page(body, "https://i/demo/", "demo", max_files=30)
    assert decoded == []  # refused from its text
    # A body too short to hold more entries than the limit is not counted: decoded, and judged.
    (one,) = parse_json_page(
        _json_files(_entry("demo-1.0-py3-none-any.whl")), "https://i/demo/", "demo", max_files=30
    ).files
    assert one.filename == "demo-1.0-py3-none-any.whl" and len(decoded) == 1


def test_parsing_stops_at_the_deadline() -> None:
    entries = [_entry(f"demo-1.{n}-py3-none-any.whl") for n in range(1000)]
    html = "".join(f'<a href="demo-1.{n}-py3-none-any.whl">x</a>' for n in range(1000))
    with deadline_scope(time.monotonic() - 1):
        with pytest.raises(ResolutionTimeout, match="while parsing https://i/demo/"):
            parse_json_page(_json_files(*entries), "https://i/demo/", "demo")
        with pytest.raises(ResolutionTimeout, match="while parsing https://i/demo/"):
            parse_html_page(html, "https://i/demo/", "demo")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.builds("https://{}/p/x.whl".format, st.text(max_size=12)),
            st.builds("//{}]/x".format, st.text(alphabet="[]:1a.ï", max_size=6)),
        ),
        max_size=5,
    )
)
def test_check_urls_refuses_exactly_what_urljoin_refuses(urls: list[str]) -> None:
    page_url = "https://pypi.example/simple/demo/"
    refused = False
    for url in urls:
        try:
            urldefrag(urljoin(page_url, url))
        except ValueError:
            refused = True
            break
    if refused:
        with pytest.raises(ValueError):
            check_urls(page_url, urls)
    else:
        check_urls(page_url, urls)
