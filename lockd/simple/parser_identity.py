"""What parsed a page, as a digest: a page form (`lockd.simple.page_form`) stands for one parser only.

The digest covers the source of every module whose code decides what a page parses to, and the
versions of lockd, packaging and Python; a form made by any other parser reads back as a miss.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from functools import lru_cache

import packaging

__all__ = ["parser_identity"]

# Every module whose code decides what a body parses to: the parsers, the per-file rules, the
# specifier bounds, the target table that filters wheels, and the form's encoding.
_PARSER_MODULES = (
    "lockd.simple.dist_file",
    "lockd.simple.files",
    "lockd.simple.form_checks",
    "lockd.simple.form_columns",
    "lockd.simple.form_rows",
    "lockd.simple.json_form",
    "lockd.simple.json_page",
    "lockd.simple.html_page",
    "lockd.simple.page_form",
    "lockd.simple.packed_columns",
    "lockd.index_text",
    "lockd.limits",
    "lockd.target.coverage",
    "lockd.target.platforms",
    "lockd.target.python",
    "lockd.target.target",
    "lockd.target.aliases",
)


@lru_cache(maxsize=1)
def parser_identity() -> str | None:
    """What parsed a page, as a digest; None (no forms at all) when a parser's source cannot be read."""
    from lockd import __version__  # noqa: PLC0415  # lockd's package imports nothing else

    digest = hashlib.sha256()
    for part in (__version__, packaging.__version__, sys.version):
        digest.update(part.encode() + b"\0")
    for name in _PARSER_MODULES:
        # The source as found, not run: the HTML parser (and html.parser) loads only with an
        # HTML page, and a run on PyPI alone never needs it (~5 ms of `lockd lock`'s start).
        loaded = sys.modules.get(name)
        spec = importlib.util.find_spec(name) if loaded is None else loaded.__spec__
        origin = getattr(spec, "origin", None)
        if not origin:
            return None
        try:
            with open(origin, "rb") as source:
                digest.update(source.read() + b"\0")
        except OSError:
            return None
    return digest.hexdigest()
