"""The `lockd` command: one module per command group, and the table that joins them.

Each subcommand is one `(name, help, add_arguments, run)` entry in `_COMMANDS`: `server`
(serve, migrate, openapi), `admin` (token, gc), `lock` (no server needed; its persistent
cache is `user_cache`), `why`, and `drift` (drift, check). Settings are built here, once,
from `LOCKD_*`, after the arguments parsed. Errors print their message and hint and exit
non-zero; tracebacks are for bugs. What only some subcommands need (the web stack, the
database stack, the resolver) is imported inside them, so `lockd --help` and `lockd lock`
start without what they do not use (`tests/test_cli.py` checks which packages they load).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lockd import __version__
from lockd.cli import admin, drift, lock, server, why
from lockd.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED
from lockd.cli.server import openapi_document
from lockd.errors import LockdError

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = ["main", "openapi_document"]

_Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, "Settings"], int]
]

_COMMANDS: list[_Command] = [
    ("serve", "run the HTTP server", server.serve_arguments, server.serve),
    ("migrate", "upgrade the database schema to head", server.migrate_arguments, server.migrate),
    ("token", "manage bearer tokens", admin.token_arguments, admin.token),
    ("lock", "resolve a requirements.in without a server", lock.lock_arguments, lock.lock),
    ("why", "show every path from a requirement to a package of a lock", why.why_arguments, why.why),
    ("openapi", "print the OpenAPI document", server.openapi_arguments, server.openapi),
    ("drift", "run drift detection, or gate CI on the latest run", drift.drift_arguments, drift.drift),
    ("check", "gate CI on one lock's drift status, asking a server", drift.check_arguments, drift.check),
    ("gc", "retire unused names and delete long-retired inputs", admin.gc_arguments, admin.gc),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockd", description="Dependency locks for ML images.")
    parser.add_argument("--version", action="version", version=f"lockd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_arguments, run in _COMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # httpx imports its own command line (httpx._main) when click, pygments and rich are
    # installed: in a development environment, a third of `lockd lock`'s start-up, for a command
    # lockd never runs. A None entry makes that import fail, which httpx expects (it installs a
    # stub). Does nothing once httpx is loaded.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        # Settings (pydantic) and the accelerator table load only once a command is to run.
        from lockd.accelerator import install_table  # noqa: PLC0415
        from lockd.config import load_settings  # noqa: PLC0415

        settings = load_settings()
        install_table(settings.accelerator_table)
        result: int = args.run(args, settings)
    except LockdError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return result
