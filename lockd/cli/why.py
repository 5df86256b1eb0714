"""`lockd why`: every path from a requirement to a package, from a lock file or asked of a server."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lockd.cli.exits import EXIT_USAGE

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = ["why", "why_arguments"]


def why_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", help="the project to explain, e.g. filelock")
    parser.add_argument("--lock", type=Path, default=None, help="a lock.json file (no server needed)")
    parser.add_argument(
        "-r", "--requirements", type=Path, default=None, help="its requirements.in, for line numbers"
    )
    parser.add_argument(
        "--server", default=None, help="lockd's URL (with --digest); the token is LOCKD_TOKEN, if set"
    )
    parser.add_argument("--digest", default=None, help="the lock's input digest on --server")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def why(args: argparse.Namespace, settings: Settings) -> int:
    from lockd.why_command import fetch_why, why_from_lock_file  # noqa: PLC0415 (only `why` needs them)

    if (args.lock is None) == (args.server is None) or (args.server is None) != (args.digest is None):
        print("error: give --lock FILE, or --server URL with --digest DIGEST", file=sys.stderr)
        return EXIT_USAGE
    if args.server is not None:
        token = os.environ.get("LOCKD_TOKEN")
        sys.stdout.write(fetch_why(args.server, args.digest, args.package, token=token, as_json=args.json))
    else:
        sys.stdout.write(
            why_from_lock_file(args.lock, args.package, requirements=args.requirements, as_json=args.json)
        )
    return 0
