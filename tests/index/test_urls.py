"""`lockd.index.urls`: what the index client asks for, normalised once; what it refuses to ask for."""

from __future__ import annotations

import pytest

from lockd.index.urls import MAX_URL_LENGTH, BadUrl, parse_request_url, redirect_target


@pytest.mark.parametrize(
    ("url", "text", "host_key", "target"),
    [
        ("https://pypi.org/simple/numpy/", "https://pypi.org/simple/numpy/", "pypi.org", "/simple/numpy/"),
        # The forms httpx gave these, which pages and credentials were matched against before.
        ("https://Mirror.EXAMPLE.com", "https://mirror.example.com/", "mirror.example.com", "/"),
        ("https://h:443/a b?x=ü#frag", "https://h/a%20b?x=%C3%BC#frag", "h", "/a%20b?x=%C3%BC"),
        ("http://h:80/simple/", "http://h/simple/", "h", "/simple/"),
        ("http://h:8080/simple/", "http://h:8080/simple/", "h:8080", "/simple/"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x", "::1:8443", "/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x", "xn--bcher-kva.example", "/x"),
        # Percent-escapes already there stay as written: a wheel's local version is "%2B".
        (
            "https://download.pytorch.org/whl/cu128/torch-2.9.1%2Bcu128-cp311-cp311-manylinux_2_28_x86_64.whl",
            "https://download.pytorch.org/whl/cu128/torch-2.9.1%2Bcu128-cp311-cp311-manylinux_2_28_x86_64.whl",
            "download.pytorch.org",
            "/whl/cu128/torch-2.9.1%2Bcu128-cp311-cp311-manylinux_2_28_x86_64.whl",
        ),
    ],
)
def test_urls_are_normalised_as_lockd_keeps_and_shows_them(
    url: str, text: str, host_key: str, target: str
) -> None:
    parsed = parse_request_url(url)
    assert (parsed.text, parsed.host_key, parsed.target) == (text, host_key, target)
    assert parse_request_url(parsed.text) == parsed  # normalising twice changes nothing


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "not file scheme"),
        ("ftp://example.com/x", "not ftp scheme"),
        ("data:text/plain,hi", "not data scheme"),
        ("//nohost/x", "not no scheme"),
        ("https:///x", "names no host"),
        ("https://h:99999/", "invalid URL"),
        ("https://[zz]/", "invalid URL"),
        ("https://a b/", "characters no host name has"),
        ("https://h/x\r\nX-Injected: 1", "control characters"),
        ("https://h\t/x", "control characters"),
        ("https://h/" + "a" * MAX_URL_LENGTH, "too long"),
    ],
)
def test_what_an_index_may_not_send_lockd_to_is_refused(url: str, why: str) -> None:
    with pytest.raises(BadUrl, match=why):
        parse_request_url(url)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/simple/demo/", "https://idx.example/simple/demo/"),
        ("../b/", "https://idx.example/simple/b/"),
        ("//files.example/p/x.whl", "https://files.example/p/x.whl"),
        ("http://other.example:8080/y", "http://other.example:8080/y"),
        ("https:/same-host/", "https://idx.example/same-host/"),
        ("?page=2", "https://idx.example/simple/a/?page=2"),
    ],
)
def test_a_redirect_resolves_against_the_url_that_answered(location: str, expected: str) -> None:
    assert redirect_target(parse_request_url("https://idx.example/simple/a/"), location).text == expected


def test_a_redirect_keeps_the_fragment_it_has_or_else_the_one_asked_for() -> None:
    asked = parse_request_url("https://idx.example/a#sha256=ab")
    assert redirect_target(asked, "/b").text == "https://idx.example/b#sha256=ab"
    assert redirect_target(asked, "/b#own").text == "https://idx.example/b#own"
    with pytest.raises(BadUrl, match=r"invalid redirect location: .*not ftp scheme"):
        redirect_target(asked, "ftp://idx.example/b")
