"""The `lockd` command: serve, migrate, token, lock (no server needed), why, openapi, drift, check and gc.

Each subcommand is a `(name, add_arguments, run)` entry in `_COMMANDS`: adding one (the drift
commands) is one function pair and one line there. Settings are built here, once, from
`LOCKD_*`. Errors print their message and hint and exit non-zero; tracebacks are for bugs.
What only some subcommands need (the web stack, the database stack) is imported inside them,
so `lockd lock` and `lockd --help` start without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd import __version__
from lockd.accelerator import install_table
from lockd.config import Settings, load_settings
from lockd.drift import ALERT_KINDS, FINDING_KINDS, parse_kinds
from lockd.errors import LockdError, NotFound
from lockd.http.logs import configure_logging
from lockd.index import FetchStats, IndexClient
from lockd.inputs import LockOptions, LockRequest, decode_body, parse_as_of
from lockd.intake import build_request
from lockd.local_includes import inline_includes
from lockd.lock import Lock
from lockd.periodic import Periodic
from lockd.render import DEFAULT_FORMAT, FORMATS, render
from lockd.resolver import ResolveStats, timed_resolve, variant_offers
from lockd.routing import IndexPlan
from lockd.sandbox_builds import metadata_builder_for
from lockd.scopes import SCOPES
from lockd.target import Target

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2


# -- serve ---------------------------------------------------------------------------------


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
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


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: `lockd lock` should not pay for loading the web stack (~0.5 s).
    import uvicorn  # noqa: PLC0415

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


# -- migrate -------------------------------------------------------------------------------


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: `lockd lock` never opens the database, and SQLAlchemy costs ~0.15 s to load.
    from lockd.service import Service  # noqa: PLC0415

    service = Service.open(settings)
    try:
        head = service.migrate()
    finally:
        service.close()
    print(f"database at revision {head}", file=sys.stderr)
    return 0


# -- token ---------------------------------------------------------------------------------


def _token_arguments(parser: argparse.ArgumentParser) -> None:
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


def _token(args: argparse.Namespace, settings: Settings) -> int:
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
        token = service.tokens.create(
            name=args.name, scope=args.scope, expires_at=expires_at, name_prefixes=args.name_prefix
        )
    finally:
        service.close()
    print(token)
    print(
        f"token {args.name!r} with scope {args.scope!r}: shown once, stored only as a hash", file=sys.stderr
    )
    return 0


# -- lock ----------------------------------------------------------------------------------


def _lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("requirements", type=Path, help="requirements.in (- for stdin)")
    parser.add_argument(
        "--platform",
        required=True,
        help="linux_x86_64, linux_aarch64, macos_arm64, macos_x86_64, windows_amd64, windows_arm64"
        " (or uv's --python-platform and conda's names)",
    )
    parser.add_argument("--python", required=True, help="3.11, 3.11.7, or 3.14t (free-threaded)")
    parser.add_argument(
        "--cuda", default=None, help="cpu, cu128, rocm6.4, xpu, …, or auto with --driver (omit for none)"
    )
    parser.add_argument(
        "--glibc", default=None, help="minimum glibc of a Linux target (2.17 … 2.41; default 2.28)"
    )
    parser.add_argument(
        "--musl", default=None, help="musl level of a Linux target instead of glibc (1.1 or 1.2)"
    )
    parser.add_argument("--macos", default=None, help="minimum macOS of a macOS target (default 13.0)")
    parser.add_argument(
        "--driver", default=None, help="NVIDIA driver (580.65.06) or ROCm version (rocm6.4) for --cuda auto"
    )
    parser.add_argument("--format", default=DEFAULT_FORMAT, choices=sorted(FORMATS))
    parser.add_argument("-o", "--output", type=Path, default=None, help="write here instead of stdout")
    parser.add_argument(
        "-c", "--constraints", type=Path, default=None, help="constraints.txt (its -r/-c lines are read in)"
    )
    parser.add_argument(
        "--index-url",
        default=None,
        help="default index (LOCKD_INDEX_URL, else PyPI); https://user:pw@host/… is not written to the lock",
    )
    parser.add_argument(
        "--pytorch-index-url",
        default=None,
        help="PyTorch index base (LOCKD_PYTORCH_INDEX_URL), credentials as --index-url",
    )
    parser.add_argument("--pre", action="store_true", help="allow pre-releases")
    parser.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="NAME",
        help="use this configured private index (LOCKD_PRIVATE_INDEXES), by name; repeatable",
    )
    parser.add_argument(
        "--only-binary",
        action="store_true",
        help="wheels only: rule out versions without a wheel for the target (pip's --only-binary :all:)",
    )
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="TIME",
        help="ignore files uploaded after this ISO 8601 date or time (UTC unless it names an offset), as as_of in the API",
    )


class _Progress:
    """A one-line progress display on a TTY: packages pinned, bytes fetched, elapsed time."""

    def __init__(self, stream: TextIO, index: IndexClient) -> None:
        self._stream = stream
        self._index = index
        self._pinned: set[NormalizedName] = set()
        self._backtracks = 0
        self._started = time.monotonic()
        self._ticker = Periodic("lockd-progress", 0.1, self._show)

    def on_pinned(self, name: NormalizedName, version: Version) -> None:
        self._pinned.add(name)

    def on_backtrack(self, name: NormalizedName) -> None:
        self._backtracks += 1

    def __enter__(self) -> _Progress:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._ticker.stop()
        self._stream.write("\r\x1b[K")
        self._stream.flush()

    def _show(self) -> None:
        megabytes = self._index.stats.bytes_fetched / 1e6
        line = (
            f"resolving: {len(self._pinned)} packages pinned, {megabytes:.1f} MB fetched, "
            f"{time.monotonic() - self._started:.1f} s"
        )
        if self._backtracks:
            line += f", {self._backtracks} backtracks"
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()


def _read_text(path: Path) -> str:
    if str(path) == "-":
        return decode_body(sys.stdin.buffer.read())
    try:
        return decode_body(path.read_bytes())
    except OSError as exc:
        raise LockdError(f"cannot read {path}: {exc.strerror}") from None


def _resolve_without_server(
    settings: Settings, request: LockRequest, index: IndexClient
) -> tuple[Lock, ResolveStats, FetchStats]:
    """No database, no lease: one index client with in-memory caches, a progress line on a TTY."""
    if sys.stderr.isatty():
        with _Progress(sys.stderr, index) as progress:
            lock, stats = timed_resolve(request, index, settings.resolve_timeout, progress)
    else:
        lock, stats = timed_resolve(request, index, settings.resolve_timeout)
    return lock, stats, index.stats


def _lock(args: argparse.Namespace, settings: Settings) -> int:
    if args.index_url or args.pytorch_index_url:
        # Credentials in these URLs are split off here, as from LOCKD_*: the lock never shows them.
        settings = settings.with_index_urls(
            index_url=args.index_url, pytorch_index_url=args.pytorch_index_url
        )
    target = {
        name: getattr(args, name)
        for name in ("platform", "python", "cuda", "glibc", "musl", "macos", "driver")
        if getattr(args, name) is not None
    }
    # pip's -r and -c lines name local files: read them in here, since the server never can.
    stdin = str(args.requirements) == "-"
    inlined = inline_includes(
        Path("requirements.in") if stdin else args.requirements,
        text=_read_text(args.requirements) if stdin else None,
    )
    constraints = inlined.text(constraints=True)
    if args.constraints is not None:
        constraints += inline_includes(args.constraints, constraints=True).text(constraints=True)
    indexes = tuple(args.index)

    def index_plan(target: Target) -> IndexPlan:
        return settings.index_plan(target, indexes)

    client_options = settings.client_options()
    with IndexClient.from_options(client_options, metadata_builder=metadata_builder_for(settings)) as index:
        request = build_request(
            requirements=inlined.text(constraints=False),
            constraints=constraints,
            target=target,
            index_plan=index_plan,
            options=LockOptions(
                prereleases=args.pre,
                as_of=None if args.as_of is None else parse_as_of(args.as_of),
                only_binary=args.only_binary,
            ),
            max_requirements=settings.max_requirements,
            max_constraints=settings.max_constraints,
            url_hosts=settings.allowed_url_hosts,
            metadata_overrides=settings.dependency_metadata,
            offers=variant_offers(index, index_plan),
        )
        if request.selection is not None and sys.stderr.isatty():
            print(f"cuda=auto: {request.selection.reason}", file=sys.stderr)
        lock, stats, fetched = _resolve_without_server(settings, request, index)
    for warning in lock.warnings:
        print(f"warning: {warning.message}", file=sys.stderr)
    content = render(lock, args.format)
    if args.output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        args.output.write_bytes(content)
    if sys.stderr.isatty():
        print(
            f"locked {stats.packages} packages in {stats.seconds:.1f} s "
            f"({fetched.requests} requests, {fetched.bytes_fetched / 1e6:.1f} MB)\n"
            f"input digest {request.digest}\nlock digest  {lock.digest}",
            file=sys.stderr,
        )
    return 0


# -- drift (the drift issue) ---------------------------------------------------------------

EXIT_DRIFT = 3  # the gate tripped: distinct from 1 (an error) so CI can tell them apart
_DEFAULT_FAIL_ON = ",".join(kind for kind in FINDING_KINDS if kind in ALERT_KINDS)


def _drift_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="check every stored lock now and store the findings (for cron)")
    run.add_argument(
        "--fail-on", default="", help="also exit 3 if this run finds these kinds, e.g. tampered,missing"
    )
    check = actions.add_parser("check", help="exit 3 if the latest complete run has findings of these kinds")
    check.add_argument(
        "--fail-on", default=_DEFAULT_FAIL_ON, help=f"comma-separated kinds (default {_DEFAULT_FAIL_ON})"
    )


def _drift(args: argparse.Namespace, settings: Settings) -> int:
    # The database stack only where it is needed.
    from lockd.drift_runs import DriftRuns  # noqa: PLC0415
    from lockd.drift_views import drift_findings  # noqa: PLC0415
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


# -- why -----------------------------------------------------------------------------------


def _why_arguments(parser: argparse.ArgumentParser) -> None:
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


def _why(args: argparse.Namespace, settings: Settings) -> int:
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


# -- check: the per-lock gate, over HTTP ---------------------------------------------------


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="lockd's URL; the token is LOCKD_TOKEN, if set")
    parser.add_argument("--name", default=None, help="the lock's name (or --digest)")
    parser.add_argument("--digest", default=None, help="the lock's input digest")
    parser.add_argument(
        "--fail-on", default=_DEFAULT_FAIL_ON, help=f"comma-separated kinds (default {_DEFAULT_FAIL_ON})"
    )


def _check(args: argparse.Namespace, settings: Settings) -> int:
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


# -- gc ------------------------------------------------------------------------------------


def _gc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than", default=None, help="retired for longer than 30d, 12h … (default LOCKD_GC_AFTER)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")


def _gc(args: argparse.Namespace, settings: Settings) -> int:
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


# -- openapi -------------------------------------------------------------------------------


def _openapi_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(openapi_document(settings))
    return 0


def openapi_document(settings: Settings) -> str:
    """The app's OpenAPI schema as committed in `api/openapi.json` (no database is touched)."""
    from lockd.http.app import create_app  # noqa: PLC0415 (the web stack only where it is needed)

    offline = load_settings(**{**settings.model_dump(), "database_url": "sqlite://"})
    app = create_app(offline)
    try:
        return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    finally:
        app.state.service.close()


# -- the command table ---------------------------------------------------------------------

_Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Settings], int]
]

_COMMANDS: list[_Command] = [
    ("serve", "run the HTTP server", _serve_arguments, _serve),
    ("migrate", "upgrade the database schema to head", _migrate_arguments, _migrate),
    ("token", "manage bearer tokens", _token_arguments, _token),
    ("lock", "resolve a requirements.in without a server", _lock_arguments, _lock),
    ("why", "show every path from a requirement to a package of a lock", _why_arguments, _why),
    ("openapi", "print the OpenAPI document", _openapi_arguments, _openapi),
    ("drift", "run drift detection, or gate CI on the latest run", _drift_arguments, _drift),
    ("check", "gate CI on one lock's drift status, asking a server", _check_arguments, _check),
    ("gc", "retire unused names and delete long-retired inputs", _gc_arguments, _gc),
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
    try:
        settings = load_settings()
        install_table(settings.accelerator_table)
        result: int = args.run(args, settings)
    except LockdError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return result
