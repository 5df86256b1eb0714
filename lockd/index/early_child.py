"""The page child of `lockd lock`, spawned as soon as the command line says `lock`, and adopted later.

A cold `lockd lock` has its first pages in hand about 190-200 ms after it starts, and gives the
big ones to its page child (`page_worker`) to form, which takes about 130 ms from its spawn to
its first answer (it imports the page parsers). Spawned when the command reached
`PageWorker.start_soon` (66 ms in, after its settings and the accelerator table loaded), the root
pages of bench/cases/pypi-25 waited about 60 ms for it. Spawned here, before any of that loads,
the child imports on the other core while this process does.

`PageWorker` adopts the process (`take`) only if it runs exactly what it would have started
itself, and is still running; any other is ended. A child nobody adopts (`lockd lock --help`, a
bad argument, a page worker the settings turn off) is ended by `discard`, which `lockd.cli.main`
calls on its way out: closing its stdin ends it, as it ends every page child. This module loads
only what spawning needs, so that nothing the command line does not need is imported first.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence

from lockd.index.child_code import child_code

__all__ = ["discard", "page_child_argv", "spawn", "take"]

_PAGE_CHILD = child_code("lockd.index.page_child")
_lock = threading.Lock()
_Early = tuple[tuple[str, ...], subprocess.Popen[bytes]]  # as spawned (argv), and its process
_early: _Early | None = None


def page_child_argv(*, fetches: bool) -> list[str]:
    """How a page child is started: this interpreter, `python -c`, `--fetches` for a server's."""
    return [sys.executable, "-c", _PAGE_CHILD, *(["--fetches"] if fetches else [])]


def popen(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """A child with its stdin and stdout piped to this process; its stderr is dropped."""
    return subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def spawn(argv: Sequence[str]) -> None:
    """Starts `argv` now, for `take` to hand over; a failure is left for the adopter to meet."""
    try:
        process = popen(argv)
    except OSError:  # a process limit, no memory to fork: the page worker tries again itself
        return
    previous = _swap((tuple(argv), process))
    if previous is not None:
        _end(previous[1])


def take(argv: Sequence[str]) -> subprocess.Popen[bytes] | None:
    """The early child if it runs `argv` and is still running; None otherwise (any other is ended)."""
    early = _swap(None)
    if early is None:
        return None
    spawned_as, process = early
    if spawned_as != tuple(argv) or process.poll() is not None:
        _end(process)
        return None
    return process


def discard() -> None:
    """Ends the early child if nobody took it."""
    early = _swap(None)
    if early is not None:
        _end(early[1])


def _swap(new: _Early | None) -> _Early | None:
    """Puts `new` in place of the early child, answering the one it replaced."""
    global _early
    with _lock:
        previous, _early = _early, new
    return previous


def _end(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()  # at the end of its stdin the child ends
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
