"""`lockd lock` of a bench case, run in this process: for the tools that watch one from inside.

`bench.timeline` (when it asks and reads) and `bench.cli_cpu` (where its CPU goes) wrap lockd's
functions in this process (`replace_everywhere` for a module-level one) and then run the command
here, with the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_lock_arguments", "lock_in_process", "replace_everywhere"]


def add_lock_arguments(parser: argparse.ArgumentParser) -> None:
    """The case and the target a tool's `lockd lock` runs with."""
    parser.add_argument("case", type=Path, help="a case directory (its requirements.in is locked)")
    parser.add_argument("--platform", default="linux_x86_64")
    parser.add_argument("--python", default="3.11")
    parser.add_argument(
        "--index-url", default=None, help="as `lockd lock --index-url` (default: LOCKD_INDEX_URL, else PyPI)"
    )


def lock_in_process(args: argparse.Namespace, work: Path) -> int:
    """`lockd lock` of `args.case` in this process, its lock `work`/lock.txt and its cache `work`/cache."""
    import lockd.cli  # noqa: PLC0415  # after the caller wrapped what it watches

    command = [
        "lock", str(args.case / "requirements.in"), "--platform", args.platform, "--python", args.python,
        "-o", str(work / "lock.txt"), "--cache-dir", str(work / "cache"),
    ]  # fmt: skip
    if args.index_url is not None:
        command += ["--index-url", args.index_url]
    return lockd.cli.main(command)


def replace_everywhere(name: str, old: Callable[..., Any], new: Callable[..., Any]) -> None:
    """`name` rebound to `new` in every loaded lockd module that holds `old` under it (its own
    module, and those that imported it by name)."""
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("lockd") and getattr(module, name, None) is old:
            setattr(module, name, new)
