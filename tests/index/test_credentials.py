"""HTTP Basic credentials of private indexes: split from URLs, matched to hosts, sent by the client
to the index host only (redirects included), and never shown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from packaging.utils import canonicalize_name

from fixtures.served_index import ControlledIndex, ServedIndex
from lockd.errors import IndexUnavailable
from lockd.index import IndexClient, IndexCredentials, split_credentials
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.simple import DistFile
from tests.support import QuietHandler, fetched, loopback_http

TORCH_WHEEL = "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"


def _file(client: IndexClient, index_url: str, project: str, filename: str) -> DistFile:
    page = client.project_page(index_url, canonicalize_name(project))
    return next(f for f in page.files if f.filename == filename)


def _host(index: ServedIndex) -> str:
    return index.url.removeprefix("http://")


def test_credentials_go_with_every_kind_of_request_to_the_index_host(mutable_index: ControlledIndex) -> None:
    # A private mirror with one token for the whole host (both its PyPI and its PyTorch side).
    mutable_index.require_auth("ci", "s3cret")
    default_url, credentials = split_credentials(f"http://ci:s3cret@{_host(mutable_index)}/simple/")
    assert default_url == mutable_index.pypi_url
    with IndexClient(timeout=5.0, credentials=credentials) as client:
        pep658 = _file(client, default_url, "lockd-fx-plain", "lockd_fx_plain-1.1-py3-none-any.whl")
        assert pep658.metadata_url is not None
        assert b"Name: lockd-fx-plain" in client.fetch_metadata(pep658)
        torch = _file(client, default_url, "torch", TORCH_WHEEL)
        assert b"Requires-Dist: nvidia-cuda-runtime-cu12" in client.fetch_metadata(torch)  # range requests
        sdist = _file(client, default_url, "lockd-fx-sdist-static", "lockd_fx_sdist_static-1.0.tar.gz")
        assert b"Metadata-Version: 2.2" in client.fetch_metadata(sdist)  # a download
        page = client.project_page(mutable_index.variant_url("cu124"), canonicalize_name("torchaudio"))
        hashless = next(f for f in page.files if f.sha256 is None)
        assert client.file_sha256(hashless)  # HEAD, then a download
    log = [r for r in mutable_index.requests_log() if r.kind != "control"]
    assert {r.kind for r in log} >= {"page", "metadata", "range", "file", "head"}
    assert [(r.path, r.status, r.user) for r in log if r.user != "ci" or r.status >= 400] == []
    # The same index without its credentials: a problem that says so.
    with IndexClient(timeout=5.0) as anonymous, pytest.raises(IndexUnavailable) as raised:
        anonymous.project_page(default_url, canonicalize_name("idna"))
    assert raised.value.message == (
        f"{default_url}idna/ answered HTTP 401: lockd has no credentials for {_host(mutable_index)}"
    )


def test_wrong_credentials_name_the_index_and_its_host_never_the_secret(
    mutable_index: ControlledIndex,
) -> None:
    mutable_index.require_auth("ci", "s3cret")
    default_url, wrong = split_credentials(f"http://ci:not-the-s3cret@{_host(mutable_index)}/simple/")
    with IndexClient(timeout=5.0, credentials=wrong) as client, pytest.raises(IndexUnavailable) as raised:
        client.project_page(default_url, canonicalize_name("idna"))
    error = raised.value
    assert error.code == "index-unavailable"
    assert error.message == (
        f"{default_url}idna/ answered HTTP 401: it refused the credentials configured for {_host(mutable_index)}"
    )
    assert error.context == {"url": f"{default_url}idna/", "status": 401, "host": _host(mutable_index)}
    assert "s3cret" not in str(error) + repr(error.to_json()) + repr(wrong)
    assert "ci" not in repr(wrong.indexes[0].credential)  # a token-only URL's user is the secret


def test_a_token_only_url_is_a_user_with_an_empty_password(mutable_index: ControlledIndex) -> None:
    mutable_index.require_auth("tok3n", "")
    default_url, credentials = split_credentials(f"http://tok3n@{_host(mutable_index)}/simple/")
    with IndexClient(timeout=5.0, credentials=credentials) as client:
        assert client.project_page(default_url, canonicalize_name("idna")).files
    assert {r.user for r in mutable_index.requests_log()} == {"tok3n"}


@dataclass(frozen=True, slots=True)
class _Redirector:
    """A loopback server that answers every GET with a redirect to the fixture index + path."""

    host: str
    seen: list[str | None]  # the Authorization header each request carried


@pytest.fixture
def redirector(mutable_index: ControlledIndex) -> Iterator[_Redirector]:
    seen: list[str | None] = []
    target = mutable_index.url

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with loopback_http(Handler) as host:
        yield _Redirector(host, seen)


def test_credentials_never_follow_a_redirect_to_another_host(
    mutable_index: ControlledIndex, redirector: _Redirector
) -> None:
    # The configured index redirects to another host (another port is another host, as for pip).
    mutable_index.require_auth("ci", "s3cret")
    index_url, credentials = split_credentials(f"http://ci:s3cret@{redirector.host}/simple/")
    with (
        IndexClient(timeout=5.0, credentials=credentials) as client,
        pytest.raises(IndexUnavailable) as raised,
    ):
        client.project_page(index_url, canonicalize_name("idna"))
    assert raised.value.message.endswith(f"401: lockd has no credentials for {_host(mutable_index)}")
    assert redirector.seen and all(h is not None and h.startswith("Basic ") for h in redirector.seen)
    assert [r.user for r in mutable_index.requests_log()] == [None]
    # With credentials of its own, the other host gets those, never the first host's.
    mutable_index.reset_counters()
    _, own = split_credentials(f"http://mirror:other@{_host(mutable_index)}/")
    mutable_index.require_auth("mirror", "other")
    with IndexClient(timeout=5.0, credentials=credentials + own) as client:
        assert client.project_page(index_url, canonicalize_name("idna")).files
    assert {r.user for r in mutable_index.requests_log()} == {"mirror"}


def test_credentials_match_host_and_port_longest_index_first_never_https_to_http() -> None:
    _, default = split_credentials("https://user:pw@Mirror.internal/simple/")
    _, torch = split_credentials("https://torch-user:tpw@mirror.internal/whl")
    _, other_port = split_credentials("http://port-user@mirror.internal:8080/simple/")
    credentials = default + torch + other_port
    assert credentials.hosts == ("mirror.internal", "mirror.internal:8080")

    def user(url: str) -> str | None:
        found = credentials.for_url(url)
        return None if found is None else found.username

    assert user("https://mirror.internal/simple/idna/") == "user"
    assert (
        user("https://MIRROR.internal:443/packages/idna-3.10-py3-none-any.whl") == "user"
    )  # same host, no index prefix
    assert (
        user("https://mirror.internal/whl/cu124/torch-2.5.1%2Bcu124-cp311-cp311-linux_x86_64.whl")
        == "torch-user"
    )
    assert user("http://mirror.internal:8080/simple/idna/") == "port-user"
    assert user("http://mirror.internal/simple/idna/") is None  # configured for https only
    assert user("https://mirror.internal.evil/simple/") is None
    assert user("https://files.pythonhosted.org/packages/idna.whl") is None
    unchanged = "https://mirror.internal/simple/"
    assert split_credentials(unchanged) == (unchanged, IndexCredentials())
    assert split_credentials("https://u:p%40ss%3A@h/simple/?q=a@b")[0] == "https://h/simple/?q=a@b"
    found = split_credentials("https://u:p%40ss%3A@h/simple/?q=a@b")[1].for_url("https://h/x")
    assert found is not None and (found.username, found.password) == ("u", "p@ss:")


def test_the_fetcher_adds_a_credential_only_for_its_own_host() -> None:
    seen: list[tuple[str, str | None]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append((self.headers["Host"], self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with loopback_http(Handler) as mirror, loopback_http(Handler) as files:
        _, credentials = split_credentials(f"http://u:p@{mirror}/simple/")
        fetcher = Fetcher(ClientOptions(timeout=5.0, credentials=credentials), FetchCounters())
        try:
            fetched(fetcher, f"http://{mirror}/simple/idna/")
            fetched(fetcher, f"http://{files}/idna-3.10-py3-none-any.whl")  # another port: another host
            fetched(fetcher, f"http://{mirror}/packages/idna-3.10-py3-none-any.whl")  # same host, no prefix
        finally:
            fetcher.close()
    assert seen == [(mirror, "Basic dTpw"), (files, None), (mirror, "Basic dTpw")]
