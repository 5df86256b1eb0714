"""The URLs the index client asks for: parsed once, normalised, http and https only.

A URL from configuration or from an index page becomes a `RequestUrl`: scheme and host
lower-cased, a non-ASCII host IDNA-encoded, the scheme's default port dropped, and whatever a
request line may not carry percent-encoded (a space, a control character, a non-ASCII letter),
so nothing an index writes can add a header or a second request. Its `text` is the form lockd
shows, keeps (a page's URL, against which relative file URLs resolve) and matches credentials
against; it is what httpx, the client lockd used before, made of the same URL, so locks keep
their bytes. Anything else (`file:`, `ftp:`, `data:`, no host, a bad port, an unusable host)
is a `BadUrl`, which the fetcher reports as `IndexUnavailable`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import quote, urljoin, urlsplit

__all__ = ["MAX_URL_LENGTH", "BadUrl", "RequestUrl", "parse_request_url", "redirect_target"]

MAX_URL_LENGTH = 65_536  # as httpx: longer is an attack or a mistake
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a request target keeps as written (RFC 3986 reserved, unreserved and '%', as
# requests' `requote_uri`); the rest is percent-encoded. '?' and '#' never occur in a path here.
_SAFE_PATH = "!$&'()*+,/:;=@%~"
_SAFE_QUERY = _SAFE_PATH + "?[]"
_HOST = re.compile(r"[a-z0-9._-]+|[0-9a-f:.]+")
# urlsplit silently drops tabs and newlines; a URL that carries them is refused instead.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadUrl(ValueError):
    """A URL lockd will not ask for; the message names what is wrong, never the URL's userinfo."""


@dataclass(frozen=True, slots=True)
class RequestUrl:
    """One normalised http(s) URL: what to connect to and what to ask for."""

    scheme: str  # "http" or "https"
    host: str  # lower-case ASCII; an IPv6 address without brackets
    port: int | None  # None for the scheme's default
    target: str  # path and query, percent-encoded: what the request line carries
    fragment: str = ""

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def connect_port(self) -> int:
        """The port to connect to: the one given, else the scheme's default."""
        return _DEFAULT_PORTS[self.scheme] if self.port is None else self.port

    @property
    def host_key(self) -> str:
        """`host[:port]`, the unit credentials are given for (another port is another host, as for pip)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def text(self) -> str:
        fragment = f"#{self.fragment}" if self.fragment else ""
        return f"{self.scheme}://{self.netloc}{self.target}{fragment}"

    def __str__(self) -> str:
        return self.text


def parse_request_url(url: str) -> RequestUrl:
    """`url` as a `RequestUrl`, or `BadUrl` saying why lockd will not ask for it."""
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl("URL too long")
    if _CONTROL.search(url) is not None:
        raise BadUrl("the URL has control characters in it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port, or brackets that are not an IPv6 address
        raise BadUrl(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadUrl(f"lockd reads indexes over http and https only, not {scheme or 'no'} scheme")
    host = _ascii_host(parts.hostname or "")
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    if not path.startswith("/"):
        path = "/" + path
    target = path if not parts.query else f"{path}?{quote(parts.query, safe=_SAFE_QUERY)}"
    return RequestUrl(
        scheme=scheme,
        host=host,
        port=None if port == _DEFAULT_PORTS[scheme] else port,
        target=target,
        fragment=quote(parts.fragment, safe=_SAFE_QUERY),
    )


def redirect_target(current: RequestUrl, location: str) -> RequestUrl:
    """Where a `Location` sends a request for `current`: relative, schemeless or absolute, as browsers
    resolve it; a fragment of `current` carries over when the location has none (RFC 9110 10.2.2)."""
    try:
        target = parse_request_url(urljoin(current.text, location.strip()))
    except BadUrl as exc:
        raise BadUrl(f"invalid redirect location: {exc}") from None
    if current.fragment and not target.fragment:
        target = replace(target, fragment=current.fragment)
    return target


def _ascii_host(hostname: str) -> str:
    if not hostname:
        raise BadUrl("the URL names no host")
    if not hostname.isascii():
        try:
            hostname = hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadUrl("the URL's host is not a valid international domain name") from None
    host = hostname.lower()
    if _HOST.fullmatch(host) is None:
        raise BadUrl("the URL's host has characters no host name has")
    return host
