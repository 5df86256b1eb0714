"""A page's body read by its content type: the one entry to the parsers, here and in the page child.

A module of its own, loading neither the parsers nor the HTTP stack until a page is parsed: the
page child (`lockd.index.page_worker`) imports it first thing, and its start-up, on the other
core, is what a cold `lockd lock` waits for with its first pages in hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockd.errors import IndexUnavailable
from lockd.simple.media_types import HTML_CONTENT_TYPES, JSON_CONTENT_TYPE

if TYPE_CHECKING:
    from packaging.utils import NormalizedName

    from lockd.simple.files import ProjectPage

__all__ = ["page_form", "parse_page"]


def parse_page(
    body: bytes, content_type: str, final_url: str, name: NormalizedName, url: str, *, max_files: int
) -> ProjectPage:
    """The page `body` is, by its content type; `IndexUnavailable` when it is none lockd reads."""
    from lockd.simple import parse_html_page, parse_json_page  # noqa: PLC0415 (see the module's docstring)

    try:
        if content_type in (JSON_CONTENT_TYPE, "application/json"):
            return parse_json_page(body, final_url, name, max_files=max_files)
        if content_type in HTML_CONTENT_TYPES:
            return parse_html_page(body, final_url, name, max_files=max_files)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise _unparsable(url, exc) from None
    raise IndexUnavailable(
        f"{url} returned {content_type or 'no content type'}, not a Simple API page",
        context={"url": url, "content_type": content_type},
    )


def page_form(
    body: bytes,
    content_type: str,
    final_url: str,
    name: NormalizedName,
    url: str,
    *,
    max_files: int,
    source: str,
) -> bytes | None:
    """The form (`lockd.simple.page_form`) of the page `parse_page` gives, for `source`, or None.

    What the page child sends: a JSON page goes to its form without a `DistFile` per file
    (`lockd.simple.json_form`); it raises what `parse_page` raises.
    """
    if content_type not in (JSON_CONTENT_TYPE, "application/json"):
        from lockd.simple.page_form import encode_page  # noqa: PLC0415

        return encode_page(parse_page(body, content_type, final_url, name, url, max_files=max_files), source)
    from lockd.simple.json_form import json_page_form  # noqa: PLC0415

    try:
        return json_page_form(body, final_url, name, source, max_files=max_files)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise _unparsable(url, exc) from None


def _unparsable(url: str, exc: BaseException) -> IndexUnavailable:
    # RecursionError: json.loads of a page nested thousands of arrays deep.
    return IndexUnavailable(
        f"{url} returned a page lockd cannot parse ({type(exc).__name__})", context={"url": url}
    )
