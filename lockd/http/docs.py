"""The API reference page: `/openapi.json` rendered by lockd's own small script, nothing else.

FastAPI's /docs and /redoc load Swagger UI or ReDoc (and fonts) from a CDN, unpinned, on the
page where people paste tokens. This page and its script and styles are three files shipped
in the package (`static/`), served from lockd's own origin, so the page's policy can forbid
every other origin and every inline script (see `lockd.http.middleware.HTML_POLICY`).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

__all__ = ["router"]

router = APIRouter(tags=["operations"], include_in_schema=False)

_MEDIA_TYPES = {
    "docs.html": "text/html; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}


@cache
def _asset(name: str) -> bytes:
    return files("lockd.http").joinpath("static", name).read_bytes()


def _serve(name: str) -> Response:
    # Revalidated, not immutable: the files change with lockd's version, under one URL.
    return Response(_asset(name), media_type=_MEDIA_TYPES[name], headers={"Cache-Control": "no-cache"})


@router.get("/docs", response_class=Response)
async def docs_page() -> Response:
    return _serve("docs.html")


@router.get("/docs/docs.js", response_class=Response)
async def docs_script() -> Response:
    return _serve("docs.js")


@router.get("/docs/docs.css", response_class=Response)
async def docs_styles() -> Response:
    return _serve("docs.css")
