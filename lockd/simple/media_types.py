"""The media types of Simple Repository API pages (PEP 691), and what lockd asks an index for.

A module of its own, importing nothing: the index client sends `ACCEPT_HEADER` with its first
request, before the page parsers (and msgspec, and datetime) are loaded.
"""

from __future__ import annotations

__all__ = ["ACCEPT_HEADER", "HTML_CONTENT_TYPES", "JSON_CONTENT_TYPE"]

JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html", "application/xhtml+xml")

# JSON preferred, HTML accepted: PyPI answers JSON, the PyTorch index only HTML.
ACCEPT_HEADER = f"{JSON_CONTENT_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
