"""`lockd token` and `lockd gc`: the operator's chores on the database, through the service layer."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lockd.scopes import SCOPES

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = ["gc", "gc_arguments", "token", "token_arguments"]


def token_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a bearer token and print it once")
    create.add_argument("--scope", choices=SCOPES, required=True, help="admin ⊃ lock ⊃ read")
    create.add_argument("--name", default="token", help="a label to recognise it by")
    create.add_argument("--expires", default=None, help="refuse it after 90d, 12h, 30m … or an ISO 8601 time")
    create.add_argument(
        "--name-prefix", action="append", default=None, help="limit it to lock names: vision/* (repeatable)"
    )
    actions.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = actions.add_parser("revoke", help="revoke a token by its id (see `lockd token list`)")
    revoke.add_argument("id", type=int)


def token(args: argparse.Namespace, settings: Settings) -> int:
    # The database stack only where it is needed.
    from lockd.service import Service  # noqa: PLC0415
    from lockd.tokens import TokenInfo, expiry_from_text  # noqa: PLC0415

    def line(info: TokenInfo) -> str:
        when = {"expires": info.expires_at, "last-used": info.last_used_at, "revoked": info.revoked_at}
        dates = " ".join(
            f"{key}={'-' if value is None else value.isoformat(timespec='seconds')}"
            for key, value in when.items()
        )
        return f"{info.id}\t{info.name}\t{','.join(sorted(info.scopes))}\t{dates}"

    service = Service.open(settings)
    try:
        if args.action == "list":
            for info in service.tokens.list():
                print(line(info))
            return 0
        if args.action == "revoke":
            print(line(service.tokens.revoke(args.id)))
            return 0
        expires_at = None if args.expires is None else expiry_from_text(args.expires, datetime.now(UTC))
        created = service.tokens.create(
            name=args.name, scope=args.scope, expires_at=expires_at, name_prefixes=args.name_prefix
        )
    finally:
        service.close()
    print(created)
    print(
        f"token {args.name!r} with scope {args.scope!r}: shown once, stored only as a hash", file=sys.stderr
    )
    return 0


def gc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than", default=None, help="retired for longer than 30d, 12h … (default LOCKD_GC_AFTER)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")


def gc(args: argparse.Namespace, settings: Settings) -> int:
    from lockd.retirement import collect_garbage, retire_unused  # noqa: PLC0415
    from lockd.service import Service  # noqa: PLC0415
    from lockd.tokens import expiry_from_text  # noqa: PLC0415

    now = datetime.now(UTC)
    older_than = (
        None if args.older_than is None else (expiry_from_text(args.older_than, now) - now).total_seconds()
    )
    service = Service.open(settings)
    try:
        retired = retire_unused(service) if not args.dry_run else None
        report = collect_garbage(service, older_than=older_than, dry_run=args.dry_run)
    finally:
        service.close()
    for digest in report.inputs:
        print(digest)
    verb = "would delete" if report.dry_run else f"deleted ({report.locks} locks)"
    names = "" if retired is None else f"; retired names: {', '.join(retired.names) or 'none'}"
    print(f"gc {verb}: {len(report.inputs)} retired inputs{names}", file=sys.stderr)
    return 0
