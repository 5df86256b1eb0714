"""The Simple Repository API as data. No I/O.

Parses project pages in PEP 691 JSON (`json_page`) and PEP 503 HTML (`html_page`) into
`ProjectPage` / `DistFile` values (`files`, which holds the per-file rules both share;
`dist_file`, the file value, whose details a JSON page's file reads late),
including PEP 592 yanks, PEP 658/714 core-metadata availability, PEP 700 `upload-time` and
`versions`, and `#sha256=` URL fragments. `media_types` names what an index is asked for.

The names below load with their module on first use (PEP 562), not with this package: every
`lockd.simple.<module>` import runs this file first, and `lockd lock` sends its first request
(with `media_types.ACCEPT_HEADER`) before msgspec, datetime and the parsers are loaded. Likewise
`html_page` and `html.parser` load with the first HTML page: PyPI answers JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockd.lazy_names import lazy_names
from lockd.simple.media_types import ACCEPT_HEADER, JSON_CONTENT_TYPE

if TYPE_CHECKING:
    from lockd.simple.files import DistFile, ProjectPage, parse_upload_time
    from lockd.simple.json_page import parse_json_page

__all__ = [
    "ACCEPT_HEADER",
    "JSON_CONTENT_TYPE",
    "DistFile",
    "ProjectPage",
    "parse_html_page",
    "parse_json_page",
    "parse_upload_time",
]

_MODULE_OF = {
    **dict.fromkeys(("DistFile", "ProjectPage", "parse_upload_time"), "files"),
    "parse_json_page": "json_page",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF, globals())


def parse_html_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 503 project page, as the PyTorch index serves it (`lockd.simple.html_page`)."""
    from lockd.simple.html_page import parse_html_page as parse  # noqa: PLC0415

    return parse(body, page_url, project, max_files=max_files)
