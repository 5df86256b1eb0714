"""`lockd serve`, `lockd migrate` and `lockd openapi`: running the server and describing it.

The web stack (uvicorn, FastAPI) and the database stack (SQLAlchemy, Alembic) are imported
inside the commands that use them, so `lockd lock` and `lockd --help` start without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = [
    "migrate",
    "migrate_arguments",
    "openapi",
    "openapi_arguments",
    "openapi_document",
    "serve",
    "serve_arguments",
]


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="open connections per worker before answering 503 (default LOCKD_MAX_CONNECTIONS, else no limit)",
    )
    parser.add_argument(
        "--timeout-keep-alive", type=int, default=5, help="seconds an idle connection stays open (default 5)"
    )


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 (the web stack costs ~0.5 s to load)

    from lockd.http.logs import configure_logging  # noqa: PLC0415

    configure_logging(settings.log_level)
    # The factory re-reads LOCKD_* in every worker; settings above only proved them valid.
    uvicorn.run(
        "lockd.http.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        limit_concurrency=args.limit_concurrency or settings.max_connections,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    return 0


def migrate_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from lockd.service import Service  # noqa: PLC0415 (SQLAlchemy costs ~0.15 s to load)

    service = Service.open(settings)
    try:
        head = service.migrate()
    finally:
        service.close()
    print(f"database at revision {head}", file=sys.stderr)
    return 0


def openapi_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def openapi(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(openapi_document(settings))
    return 0


def openapi_document(settings: Settings) -> str:
    """The app's OpenAPI schema as committed in `api/openapi.json` (no database is touched)."""
    from lockd.config import load_settings  # noqa: PLC0415
    from lockd.http.app import create_app  # noqa: PLC0415 (the web stack only where it is needed)

    offline = load_settings(**{**settings.as_dict(), "database_url": "sqlite://"})
    app = create_app(offline)
    try:
        return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    finally:
        app.state.service.close()
