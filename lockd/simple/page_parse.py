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

__all__ = ["parse_page"]


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
        # RecursionError: json.loads of a page nested thousands of arrays deep.
        raise IndexUnavailable(
            f"{url} returned a page lockd cannot parse ({type(exc).__name__})", context={"url": url}
        ) from None
    raise IndexUnavailable(
        f"{url} returned {content_type or 'no content type'}, not a Simple API page",
        context={"url": url, "content_type": content_type},
    )
