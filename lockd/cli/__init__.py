"""The `lockd` command: one module per command group, and the table that joins them.

Each subcommand is one `_Command` in `_COMMANDS`, naming the module that holds it: `server`
(serve, migrate, openapi), `admin` (token, gc), `lock` (no server needed; its persistent
cache is `user_cache`), `why`, and `drift` (drift, check). Only the chosen command's module is
imported, and only its arguments are added: `lockd --help` lists every command from the table
alone, and `lockd lock` never loads drift, the web stack or the database stack
(`tests/test_cli_startup.py` checks which modules it loads). Settings are built here, once,
from `LOCKD_*`, after the arguments parsed. Errors print their message and hint and exit
non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, cast

from lockd import __version__
from lockd.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED
from lockd.errors import LockdError

if TYPE_CHECKING:
    from lockd.config import Settings

__all__ = ["main", "openapi_document"]

_AddArguments = Callable[[argparse.ArgumentParser], None]
_Run = Callable[[argparse.Namespace, "Settings"], int]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Command:
    """One subcommand: its name and help, and where its code is (imported only when chosen)."""

    name: str
    help: str
    module: str  # under lockd.cli
    run: str  # the function that runs it; its arguments are added by `{run}_arguments`
    # Once done, end the process without tearing down its heap (`_exit_now`): a resolution
    # leaves hundreds of thousands of objects that interpreter shutdown would free one by one.
    exits_at_once: bool = False

    def load(self) -> tuple[_AddArguments, _Run]:
        module = importlib.import_module(f"lockd.cli.{self.module}")
        add_arguments = cast("_AddArguments", getattr(module, f"{self.run}_arguments"))
        return add_arguments, cast("_Run", getattr(module, self.run))


_COMMANDS: tuple[_Command, ...] = (
    _Command(name="serve", help="run the HTTP server", module="server", run="serve"),
    _Command(name="migrate", help="upgrade the database schema to head", module="server", run="migrate"),
    _Command(name="token", help="manage bearer tokens", module="admin", run="token"),
    _Command(
        name="lock",
        help="resolve a requirements.in without a server",
        module="lock",
        run="lock",
        exits_at_once=True,
    ),
    _Command(
        name="why", help="show every path from a requirement to a package of a lock", module="why", run="why"
    ),
    _Command(name="openapi", help="print the OpenAPI document", module="server", run="openapi"),
    _Command(
        name="drift", help="run drift detection, or gate CI on the latest run", module="drift", run="drift"
    ),
    _Command(
        name="check", help="gate CI on one lock's drift status, asking a server", module="drift", run="check"
    ),
    _Command(name="gc", help="retire unused names and delete long-retired inputs", module="admin", run="gc"),
)


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv`: its first word that is not an option (`lockd` itself takes
    only -h and --version, neither with a value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def _parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockd", description="Dependency locks for ML images.")
    parser.add_argument("--version", action="version", version=f"lockd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if command.name == chosen:
            add_arguments, run = command.load()
            add_arguments(sub)
            sub.set_defaults(run=run, exits_at_once=command.exits_at_once)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `lockd` command; `argv` None: this process's own arguments, and the process is the command's."""
    words = sys.argv[1:] if argv is None else list(argv)
    chosen = _chosen(words)
    if chosen == "lock" and not {"-h", "--help"} & set(words):
        # Its page child imports on the other core while this process loads the rest (`early_child`).
        from lockd.index import early_child  # noqa: PLC0415

        early_child.spawn(early_child.page_child_argv(fetches=False))
        try:
            return _main(words, chosen, own_process=argv is None)
        finally:
            early_child.discard()  # never adopted: --help, a bad argument, no page worker
    return _main(words, chosen, own_process=argv is None)


def _main(words: list[str], chosen: str | None, *, own_process: bool) -> int:
    args = _parser(chosen).parse_args(words)
    # httpx (which `why`, `check` and `drift` use; `lockd lock` does not) imports its own command
    # line (httpx._main) when click, pygments and rich are installed: in a development
    # environment, a third of those commands' start-up, for a command lockd never runs. A None
    # entry makes that import fail, which httpx expects (it installs a stub). Does nothing once
    # httpx is loaded.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        # Settings and the accelerator table load only once a command is to run.
        from lockd.accelerator import install_table  # noqa: PLC0415
        from lockd.config import load_settings  # noqa: PLC0415

        settings = load_settings()
        install_table(settings.accelerator_table)
        result: int = args.run(args, settings)
        if own_process and args.exits_at_once:
            _exit_now(result)
    except LockdError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return result


def _exit_now(code: int) -> NoReturn:
    """Ends this process with `code` once its output is out, skipping interpreter shutdown.

    What a command wrote is flushed and closed by then (files, the user cache); shutdown would
    only free the heap object by object and run a last full collection over it: 0.2-0.6 s after
    a 300-pin `lockd lock` printed its lock (`bench/cli.py`), for memory the OS takes back at once.
    Only when `main` runs as the process's own command: a caller of `main(argv)` gets its result.
    """
    logging = sys.modules.get("logging")  # flushes its handlers, if anything logged at all
    if logging is not None:
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a closed or broken pipe: nothing more to say there
            stream.flush()
    os._exit(code)


def openapi_document(settings: Settings) -> str:
    """The app's OpenAPI schema as committed in `api/openapi.json` (`lockd.cli.server`'s)."""
    from lockd.cli.server import openapi_document as document  # noqa: PLC0415

    return document(settings)
