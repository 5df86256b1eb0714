"""The Simple Repository API as data. No I/O.

Parses project pages in PEP 691 JSON (`json_page`) and PEP 503 HTML (`html_page`) into
`ProjectPage` / `DistFile` values (`files`, which holds the per-file rules both share;
`dist_file`, the file value, whose details a JSON page's file reads late),
including PEP 592 yanks, PEP 658/714 core-metadata availability, PEP 700 `upload-time` and
`versions`, and `#sha256=` URL fragments. `html_page` and `html.parser` load with the first
HTML page: PyPI answers JSON, and `lockd lock` asks for its first page sooner without them.
"""

from __future__ import annotations

from lockd.simple.files import DistFile, ProjectPage, parse_upload_time
from lockd.simple.json_page import JSON_CONTENT_TYPE, parse_json_page

__all__ = [
    "ACCEPT_HEADER",
    "JSON_CONTENT_TYPE",
    "DistFile",
    "ProjectPage",
    "parse_html_page",
    "parse_json_page",
    "parse_upload_time",
]

# JSON preferred, HTML accepted: PyPI answers JSON, the PyTorch index only HTML.
ACCEPT_HEADER = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


def parse_html_page(
    body: bytes | str, page_url: str, project: str, *, max_files: int | None = None
) -> ProjectPage:
    """A PEP 503 project page, as the PyTorch index serves it (`lockd.simple.html_page`)."""
    from lockd.simple.html_page import parse_html_page as parse  # noqa: PLC0415

    return parse(body, page_url, project, max_files=max_files)
