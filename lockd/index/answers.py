"""An index's answer as the fetcher hands it on: status, headers, the URL that gave it, the raw body.

Header names are matched without regard to case; a header sent twice reads as its values
joined by ", " (RFC 9110 5.3). Values are decoded as Latin-1, as HTTP/1.1 carries them. The
body is never read here: `lockd.index.body` reads it within limits, and closing the answer
gives its connection back (or closes it, if the body was not read to its end).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

__all__ = ["Answer", "Headers"]


class Headers:
    """Response headers by lower-case name."""

    __slots__ = ("_values",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        self._values = values

    def get(self, name: str, default: str = "") -> str:
        return self._values.get(name.lower(), default)


class Answer:
    """One response, its body not yet read. `close` (the fetcher's `request` calls it) ends it."""

    __slots__ = ("_body", "_closed", "_headers", "_raw_headers", "status_code", "url")

    def __init__(
        self, status_code: int, raw_headers: Sequence[tuple[bytes, bytes]], url: str, body: Iterable[bytes]
    ) -> None:
        self.status_code = status_code
        self.url = url  # the URL that answered, after any redirects: what relative links resolve against
        self._raw_headers = raw_headers
        self._headers: Headers | None = None
        self._body = body
        self._closed = False

    @property
    def headers(self) -> Headers:
        if self._headers is None:  # built when first read: most answers are only asked their status
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def media_type(self) -> str:
        """The Content-Type without its parameters, lower-cased; "" when there is none."""
        return self.headers.get("content-type").split(";", 1)[0].strip().lower()

    def iter_raw(self) -> Iterator[bytes]:
        """The body's bytes as they arrive, undecoded."""
        for chunk in self._body:
            if chunk:
                yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
