"""``python -m bench.cli_cpu CASE [--warm] [--rounds N]``: where a `lockd lock`'s CPU goes, by part.

A cold `lockd lock` of a 200-pin stack is bound by its own process's CPU (the page child forms
pages on the other core), so the question is which part of that process the CPU is spent on.
This runs `lockd lock` of a case's requirements.in in this process, with a new cache directory
(``--warm``: one filled by an untimed run first, pages within their TTL), and times each part's
CPU on the thread that runs it (`time.thread_time`), exclusively: a part called inside another
(a page fetched while the resolver asks for a finder) counts for itself, not for both. What no
part claims is "other": thread hand-offs, the prefetch walk's own work, imports lockd makes as it
goes. The process's own CPU (user and system, from `getrusage`) is printed beside the parts, and
its children's (the page child, an sdist child) once they ended. Loading lockd to wrap its parts
happens before the timed run, so a process's start-up is not in these figures (`python -m
bench.cli` measures it: about 0.15-0.2 s of CPU a run).

    python -m bench.cli_cpu bench/cases/pypi-200
    python -m bench.cli_cpu bench/cases/pypi-200 --warm --rounds 3
    python -m bench.cli_cpu bench/cases/pypi-200 --cache-from ~/.cache/lockd   # cold, on a used cache

Each part is a function of lockd's, wrapped here (this process only: it is the bench's); a part
whose function is renamed is reported as missing, never silently as zero.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.lock_in_process import add_lock_arguments, lock_in_process, replace_everywhere

__all__ = ["PARTS", "main"]

# (part, module, attribute path): the order the table shows them in.
PARTS = (
    ("page requests (connect, send, headers)", "lockd.index.fetcher", "Fetcher.request"),
    ("reading bodies (pages, wheel tails)", "lockd.index.fetcher", "Fetcher.read_ok"),
    ("reading bodies (pages, wheel tails)", "lockd.index.fetcher", "Fetcher.range_body"),
    ("pages: to and from the page child", "lockd.index.page_worker", "PageWorker.form"),
    ("pages: built from forms", "lockd.index.page_reuse", "ParsedPages._from_form"),
    ("pages: built from forms", "lockd.index.page_reuse", "ParsedPages._from_store"),
    ("pages: parsed here", "lockd.index.page_reuse", "ParsedPages._parse_alone"),
    ("pages: forms written here", "lockd.index.page_reuse", "ParsedPages._keep_form"),
    ("finders", "lockd.resolver.finder", "Finder.of"),
    ("metadata: parsed", "lockd.resolver.metadata", "MetadataReader.parse"),
    ("resolver", "lockd.resolver.rounds", "Rounds.resolve"),
    ("cache: reads", "lockd.cli.user_cache", "UserCache._select"),
    ("cache: writes", "lockd.cli.user_cache", "UserCache._write"),
    ("lock built and rendered", "lockd.resolver.build", "build_lock"),
    ("lock built and rendered", "lockd.render", "render"),
)
_OTHER = "other (start-up, imports, waits, the walk)"


class _Ledger:
    """Exclusive thread CPU per part: entering a part pauses the one its thread was in."""

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._local = threading.local()
        self._lock = threading.Lock()

    def _stack(self) -> list[list[Any]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def enter(self, part: str) -> None:
        now, stack = time.thread_time(), self._stack()
        if stack:
            self._add(stack[-1][0], now - stack[-1][1])
        stack.append([part, now])

    def leave(self) -> None:
        now, stack = time.thread_time(), self._stack()
        part, since = stack.pop()
        self._add(part, now - since)
        with self._lock:
            self.calls[part] += 1
        if stack:
            stack[-1][1] = now

    def _add(self, part: str, seconds: float) -> None:
        with self._lock:
            self.cpu[part] += seconds


def _wrap(ledger: _Ledger, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        ledger.enter(part)
        try:
            return function(*args, **kwargs)
        finally:
            ledger.leave()

    return timed


def _wrap_request(ledger: _Ledger, part: str, request: Callable[..., Any]) -> Callable[..., Any]:
    """`Fetcher.request` is a context manager: its part is entering it (the answer's head), not its body."""

    @contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        manager = request(*args, **kwargs)
        ledger.enter(part)
        try:
            answer = manager.__enter__()
        except BaseException:
            ledger.leave()
            raise
        ledger.leave()
        try:
            yield answer
        except BaseException as exc:
            if not manager.__exit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            manager.__exit__(None, None, None)

    return timed


def _install(ledger: _Ledger) -> list[str]:
    """Wraps every part's function; answers the ones that are not there."""
    missing = []
    for part, module_name, path in PARTS:
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for attribute in outer:
            owner = getattr(owner, attribute, None)
        function = getattr(owner, name, None) if owner is not None else None
        if function is None:
            missing.append(f"{module_name}.{path}")
            continue
        wrapper = (_wrap_request if path == "Fetcher.request" else _wrap)(ledger, part, function)
        if outer:
            setattr(owner, name, wrapper)
        else:  # a module-level function: rebound in its module and wherever lockd imported it by name
            replace_everywhere(name, function, wrapper)
    return missing


def _cpu(who: int) -> tuple[float, float]:
    usage = resource.getrusage(who)
    return usage.ru_utime, usage.ru_stime


def _round(work: Path, args: argparse.Namespace, ledger: _Ledger) -> tuple[int, list[str]]:
    ledger.cpu.clear()
    ledger.calls.clear()
    own, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = lock_in_process(args, work)
    wall = time.perf_counter() - started
    own_after, children_after = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    user, system = own_after[0] - own[0], own_after[1] - own[1]
    child = sum(children_after) - sum(children)
    claimed = sum(ledger.cpu.values())
    lines = [
        f"wall {wall:.2f} s; this process {user + system:.2f} s of CPU (user {user:.2f}, system "
        f"{system:.2f}); its children that ended {child:.2f} s; exit {code}",
        f"{'part':44} {'CPU':>8} {'share':>6} {'calls':>6}",
    ]
    for part in dict.fromkeys(part for part, _, _ in PARTS):
        seconds = ledger.cpu.get(part, 0.0)
        share = seconds / (user + system) if user + system else 0.0
        lines.append(f"{part:44} {seconds:7.3f}s {share:6.0%} {ledger.calls.get(part, 0):6d}")
    other = max(user + system - claimed, 0.0)
    lines.append(f"{_OTHER:44} {other:7.3f}s {other / (user + system) if user + system else 0:6.0%}")
    return code, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_cpu")
    add_lock_arguments(parser)
    parser.add_argument("--warm", action="store_true", help="a filled cache (an untimed run first)")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs, each with its own table")
    parser.add_argument(
        "--cache-from",
        type=Path,
        default=None,
        help="a cache directory copied in before each cold round (a cache other stacks filled)",
    )
    args = parser.parse_args(argv)
    ledger = _Ledger()
    missing = _install(ledger)
    if missing:
        print(f"these parts are gone from lockd: {', '.join(missing)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as kept:
        for n in range(args.rounds):
            with tempfile.TemporaryDirectory() as fresh:
                work = Path(kept if args.warm else fresh)
                if args.warm and n == 0 and lock_in_process(args, work) != 0:
                    return 1
                if args.cache_from is not None and not args.warm:
                    shutil.copytree(args.cache_from, work / "cache")
                code, lines = _round(work, args, ledger)
                mode = "warm" if args.warm else "cold"
                print(f"`lockd lock` {args.case.name}, {mode}, round {n + 1}: " + "\n".join(lines))
                if code != 0:
                    return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
