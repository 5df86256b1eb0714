"""`lockd lock`: resolve a requirements.in on this machine, no server and no database.

The same intake, resolver and renderer as the server, with one index client whose metadata,
pages and hashes persist in the user's cache directory (`lockd.cli.user_cache`; `--no-cache`
keeps them in memory for this run only), no lease, and a progress line on a TTY. What only the
resolution needs is imported inside `lock`, after the arguments are parsed, so `--help` and a
usage error cost no more than argparse and the format table (`tests/test_cli_startup.py`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lockd.render import DEFAULT_FORMAT, FORMATS

if TYPE_CHECKING:
    from packaging.utils import NormalizedName
    from packaging.version import Version

    from lockd.accelerator import Accelerator
    from lockd.cli.user_cache import UserCache
    from lockd.config import Settings
    from lockd.index import FetchStats, IndexClient
    from lockd.index.page_worker import PageWorker
    from lockd.inputs import LockOptions, LockRequest
    from lockd.intake import OffersFor
    from lockd.lock import Lock
    from lockd.requirements_file import InputRequirement
    from lockd.resolver import ResolveStats
    from lockd.routing import IndexPlan
    from lockd.target import Target, VariantOffers

__all__ = ["lock", "lock_arguments"]


def lock_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="keep metadata, pages and hashes here (LOCKD_CACHE_DIR, else $XDG_CACHE_HOME/lockd, else ~/.cache/lockd)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="read and write no cache on disk: fetch everything again"
    )


class _Progress:
    """A one-line progress display on a TTY: packages pinned, bytes fetched, elapsed time."""

    def __init__(self, stream: TextIO, index: IndexClient) -> None:
        from lockd.periodic import Periodic  # noqa: PLC0415

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
    from lockd.errors import LockdError  # noqa: PLC0415
    from lockd.inputs import decode_body  # noqa: PLC0415

    if str(path) == "-":
        return decode_body(sys.stdin.buffer.read())
    try:
        return decode_body(path.read_bytes())
    except OSError as exc:
        raise LockdError(f"cannot read {path}: {exc.strerror}") from None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _open_cache(args: argparse.Namespace, settings: Settings) -> UserCache | None:
    if args.no_cache:
        return None
    from lockd.cli.user_cache import open_user_cache  # noqa: PLC0415

    directory = args.cache_dir if args.cache_dir is not None else settings.user_cache_dir
    # Pages read with credentials stay in memory: on disk, a later run with other credentials
    # (or none) would read a private index's pages without asking it. Metadata is bound to
    # its file, whose page that run must fetch first, so it is kept either way.
    page_ttl = 0.0 if settings.index_credentials else settings.page_ttl
    return open_user_cache(directory, page_ttl=page_ttl, max_bytes=settings.cache_max_bytes, warn=_warn)


def _prefetch_roots(index: IndexClient, request: LockRequest) -> None:
    """Asks for the root requirements' pages now, so they arrive while the resolver is imported.

    The client coalesces these with the resolver's own asks; a failure here is the resolver's
    to report. A requirement with a marker may not apply to the target, one with a URL has no
    page: neither is asked for. The asks go to the client's fetch threads, which take them as
    each starts: a thread started per root (50 for a 200-pin stack) made this thread wait for
    each new one to run, up to 160 ms with the resolver's import to come.
    """
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    from lockd.errors import LockdError  # noqa: PLC0415

    def fetch(name: NormalizedName) -> None:
        with suppress(LockdError):
            index.project_page(request.plan.index_for(name), name)

    for root in request.requirements:
        requirement = root.requirement
        if requirement.marker is None and requirement.url is None:
            name = canonicalize_name(requirement.name)
            index.workers.submit(fetch, name)


def _resolve_without_server(
    settings: Settings, request: LockRequest, index: IndexClient
) -> tuple[Lock, ResolveStats, FetchStats]:
    """No database, no lease: one index client, a progress line on a TTY."""
    from lockd.collector import tune_collector  # noqa: PLC0415
    from lockd.resolver import timed_resolve  # noqa: PLC0415 (imported while the roots' pages arrive)

    tune_collector()
    if sys.stderr.isatty():
        with _Progress(sys.stderr, index) as progress:
            lock, stats = timed_resolve(request, index, settings.resolve_timeout, progress)
    else:
        lock, stats = timed_resolve(request, index, settings.resolve_timeout)
    return lock, stats, index.stats


def _lazy_offers(index: IndexClient, plan: Callable[[Target], IndexPlan]) -> OffersFor:
    """`variant_offers`, importing the resolver only when a variant is asked about (`cuda=auto`).

    `build_request` always takes the answer; only `cuda=auto` asks it anything.
    """

    def offers(
        requirements: Sequence[InputRequirement],
        constraints: Sequence[InputRequirement],
        options: LockOptions,
    ) -> VariantOffers:
        def ask(base: Target, variant: Accelerator) -> str | None:
            from lockd.resolver import variant_offers  # noqa: PLC0415

            return variant_offers(index, plan)(requirements, constraints, options)(base, variant)

        return ask

    return offers


def lock(args: argparse.Namespace, settings: Settings) -> int:
    page_worker = _start_page_worker(settings)
    try:
        return _lock(args, settings, page_worker)
    finally:
        if page_worker is not None:
            page_worker.close()


def _start_page_worker(settings: Settings) -> PageWorker | None:
    """The client's page worker, made before this process loads the client and the resolver.

    Its child was spawned when the command line said `lock` (`lockd.index.early_child`), and the
    worker adopts it here, so the child's imports (~0.1 s on the other core) overlap this
    process's own: a cold run has its first pages in hand about 40 ms after its first request
    (bench/cases/pypi-25, cold: they had waited 70-90 ms for a child started at the first page,
    then about 65 ms for one started here). A run its cache answers uses no child: this one is
    ended, unused, with the run.
    """
    from lockd.index import early_child  # noqa: PLC0415
    from lockd.index.page_worker import PageWorker  # noqa: PLC0415

    worker = PageWorker.for_options(settings.client_options(), fetches=False)
    if worker is None:
        early_child.discard()  # the settings turn the page worker off
    else:
        worker.start_soon()
    return worker


def _lock(args: argparse.Namespace, settings: Settings, page_worker: PageWorker | None) -> int:
    from lockd.index import IndexClient  # noqa: PLC0415
    from lockd.inputs import LockOptions, parse_as_of  # noqa: PLC0415
    from lockd.local_includes import inline_includes  # noqa: PLC0415
    from lockd.sandbox_builds import metadata_builder_for  # noqa: PLC0415

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
    cache = _open_cache(args, settings)
    try:
        with IndexClient.from_options(
            settings.client_options(),
            metadata_builder=metadata_builder_for(settings),
            metadata_cache=None if cache is None else cache.metadata,
            hash_cache=None if cache is None else cache.hashes,
            page_store=None if cache is None else cache.pages,
            page_worker=page_worker,
        ) as index:
            request = settings.build_request(
                requirements=inlined.text(constraints=False),
                constraints=constraints,
                target=target,
                options=LockOptions(
                    prereleases=args.pre,
                    as_of=None if args.as_of is None else parse_as_of(args.as_of),
                    only_binary=args.only_binary,
                ),
                indexes=indexes,
                offers=_lazy_offers(index, settings.index_plan_for(indexes)),
            )
            _prefetch_roots(index, request)
            if request.selection is not None and sys.stderr.isatty():
                print(f"cuda=auto: {request.selection.reason}", file=sys.stderr)
            lock, stats, fetched = _resolve_without_server(settings, request, index)
    finally:
        if cache is not None:
            cache.close()  # what was learnt stays true even when the resolution failed
    from lockd.render import render  # noqa: PLC0415

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
