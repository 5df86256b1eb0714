"""`lockd drift` (run drift detection, or gate CI on the latest run) and `lockd check` (one lock, asked of a server)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from lockd.cli.exits import EXIT_DRIFT, EXIT_USAGE
from lockd.drift import ALERT_KINDS, FINDING_KINDS, parse_kinds
from lockd.errors import LockdError, NotFound

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = ["check", "check_arguments", "drift", "drift_arguments"]

_DEFAULT_FAIL_ON = ",".join(kind for kind in FINDING_KINDS if kind in ALERT_KINDS)


def drift_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="check every stored lock now and store the findings (for cron)")
    run.add_argument(
        "--fail-on", default="", help="also exit 3 if this run finds these kinds, e.g. tampered,missing"
    )
    check = actions.add_parser("check", help="exit 3 if the latest complete run has findings of these kinds")
    check.add_argument(
        "--fail-on", default=_DEFAULT_FAIL_ON, help=f"comma-separated kinds (default {_DEFAULT_FAIL_ON})"
    )


def drift(args: argparse.Namespace, settings: Settings) -> int:
    # The database stack only where it is needed.
    from lockd.drift_runs import DriftRuns  # noqa: PLC0415
    from lockd.drift_views import drift_findings  # noqa: PLC0415
    from lockd.http.logs import configure_logging  # noqa: PLC0415
    from lockd.service import Service  # noqa: PLC0415

    kinds = parse_kinds(args.fail_on)
    configure_logging(settings.log_level)  # progress goes to the JSON log on stderr
    service = Service.open(settings)
    try:
        runs = DriftRuns(service)
        if args.action == "run":
            record = runs.run(trigger="cli")
            assert record is not None  # only a scheduled run can be skipped
        else:
            found = runs.latest()
            if found is None:
                raise NotFound("no drift run has completed yet", hint="run `lockd drift run` first")
            record = found
        findings = drift_findings(service, record.id)
    finally:
        service.close()
    print(json.dumps(record.to_json(), indent=2, sort_keys=True))
    tripped = [(digest, f) for digest, f in findings if f.kind in kinds]
    for digest, finding in tripped:
        print(f"{finding.kind}: {digest[:12]}: {finding.message}", file=sys.stderr)
    if tripped:
        print(
            f"drift run {record.id}: {len(tripped)} finding(s) of {', '.join(sorted(kinds))}", file=sys.stderr
        )
        return EXIT_DRIFT
    return 0


def check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="lockd's URL; the token is LOCKD_TOKEN, if set")
    parser.add_argument("--name", default=None, help="the lock's name (or --digest)")
    parser.add_argument("--digest", default=None, help="the lock's input digest")
    parser.add_argument(
        "--fail-on", default=_DEFAULT_FAIL_ON, help=f"comma-separated kinds (default {_DEFAULT_FAIL_ON})"
    )


def check(args: argparse.Namespace, settings: Settings) -> int:
    from lockd.gate import check_lock, gate_kinds  # noqa: PLC0415 (no database stack at all)

    try:
        kinds = gate_kinds(args.fail_on)
    except LockdError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    token = os.environ.get("LOCKD_TOKEN")
    verdict = check_lock(
        server=args.server, kinds=kinds, token=token, name=args.name, digest=args.digest, out=sys.stderr
    )
    return verdict.exit_code
