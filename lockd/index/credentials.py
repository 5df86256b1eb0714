"""HTTP Basic credentials of private indexes, applied the way pip's `MultiDomainBasicAuth` does.

They are split from a configured URL's userinfo once (`split_credentials`, at the configuration
edge), then sent with every request to that index's host (pages, `.metadata`, ranges, downloads)
and to no other host, redirects included. URLs themselves never carry them, so neither do locks,
digests or messages. Values only, plus the httpx transport that adds them: nothing here knows the
index client, so settings can hold credentials without importing it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx

__all__ = [
    "BasicAuthTransport",
    "BasicCredential",
    "IndexCredential",
    "IndexCredentials",
    "host_key",
    "split_credentials",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicCredential:
    """An HTTP Basic user and password. Neither shows in a repr: a token-only URL's user is the token."""

    username: str = field(repr=False)
    password: str = field(default="", repr=False)

    @property
    def header(self) -> str:
        userpass = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(userpass).decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexCredential:
    """The credential of one configured index, for requests to its host (`host[:port]`)."""

    index_url: str  # without userinfo
    host: str
    secure: bool  # configured over https: never sent over plain http
    credential: BasicCredential


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexCredentials:
    """HTTP Basic credentials by index host, as pip's `MultiDomainBasicAuth` applies them.

    A request to a host that a configured index lives on carries that index's credential: the
    index whose URL is the longest prefix of the request's, else the first index on that host.
    Requests to any other host carry none.
    """

    indexes: tuple[IndexCredential, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.indexes)

    def __add__(self, other: IndexCredentials) -> IndexCredentials:
        return IndexCredentials(indexes=self.indexes + other.indexes)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host with a credential, `host[:port]`, in configuration order (safe to show)."""
        return tuple(dict.fromkeys(entry.host for entry in self.indexes))

    def for_url(self, url: str | httpx.URL) -> BasicCredential | None:
        """The credential a request to `url` carries, or None. Cost: one URL parse per request."""
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        host = host_key(parsed)
        text = str(parsed)
        best: IndexCredential | None = None
        best_prefix = -1
        for entry in self.indexes:
            if entry.host != host or (entry.secure and parsed.scheme != "https"):
                continue
            prefix = _with_slash(entry.index_url)
            matched = len(prefix) if text.startswith(prefix) else 0
            if matched > best_prefix:
                best, best_prefix = entry, matched
        return best.credential if best is not None else None


def split_credentials(url: str) -> tuple[str, IndexCredentials]:
    """`url` without its userinfo, and the credential the userinfo carried (none without one).

    `https://user:pa%40ss@host/simple/` → (`https://host/simple/`, user `user`, password `pa@ss`);
    `https://token@host/` is a user with an empty password, as pip takes it. A URL without
    userinfo comes back unchanged, byte for byte. Raises `ValueError` (naming no part of the
    URL) when the host of a URL with credentials cannot be parsed.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, IndexCredentials()
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not at:
        return url, IndexCredentials()
    clean = f"{scheme}{separator}{hostport}{rest[end:]}"
    if not userinfo:
        return clean, IndexCredentials()
    try:
        parsed = httpx.URL(clean)
    except httpx.InvalidURL:
        raise ValueError("the host of this URL cannot be parsed") from None
    username, _, password = userinfo.partition(":")
    credential = BasicCredential(username=unquote(username), password=unquote(password))
    entry = IndexCredential(
        index_url=str(parsed), host=host_key(parsed), secure=parsed.scheme == "https", credential=credential
    )
    return clean, IndexCredentials(indexes=(entry,))


def host_key(url: httpx.URL) -> str:
    """`host[:port]`, the unit credentials are given for (another port is another host, as for pip)."""
    return url.host if url.port is None else f"{url.host}:{url.port}"


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


class BasicAuthTransport(httpx.BaseTransport):
    """Adds an index host's credential to each request sent there, redirect hops included.

    httpx already drops `Authorization` when a redirect leaves the origin; this only ever adds
    the credential of the host a request actually goes to.
    """

    def __init__(self, inner: httpx.BaseTransport, credentials: IndexCredentials) -> None:
        self._inner = inner
        self._credentials = credentials

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        credential = self._credentials.for_url(request.url)
        if credential is not None:
            request.headers["Authorization"] = credential.header
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
