"""HTTP Basic credentials of private indexes, applied the way pip's `MultiDomainBasicAuth` does.

They are split from a configured URL's userinfo once (`split_credentials`, at the configuration
edge), then sent with every request to that index's host (pages, `.metadata`, ranges, downloads)
and to no other host, redirects included. URLs themselves never carry them, so neither do locks,
digests or messages. Values only (the fetcher adds them to each request): nothing here knows the
index client or the HTTP stack, so settings can hold credentials without importing either.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote

from lockd.index.urls import BadUrl, RequestUrl, parse_request_url

__all__ = [
    "BasicCredential",
    "IndexCredential",
    "IndexCredentials",
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

    def for_url(self, url: str | RequestUrl) -> BasicCredential | None:
        """The credential a request to `url` carries, or None (also for a URL lockd would not ask for)."""
        try:
            parsed = url if isinstance(url, RequestUrl) else parse_request_url(url)
        except BadUrl:
            return None
        host = parsed.host_key
        text = parsed.text
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
        parsed = parse_request_url(clean)
    except BadUrl:
        raise ValueError("the host of this URL cannot be parsed") from None
    username, _, password = userinfo.partition(":")
    credential = BasicCredential(username=unquote(username), password=unquote(password))
    entry = IndexCredential(
        index_url=parsed.text, host=parsed.host_key, secure=parsed.scheme == "https", credential=credential
    )
    return clean, IndexCredentials(indexes=(entry,))


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
