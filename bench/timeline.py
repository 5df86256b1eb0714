"""``python -m bench.timeline CASE [--every 50]``: when a cold `lockd lock` asks, reads and finishes.

Runs `lockd lock` of a case's requirements.in in this process, with a new cache directory, and
prints in milliseconds from the start: the first request and every `--every`-th, each sdist read
from its index (start and end, and whether a child process read it), and the resolution's start
and end. A phase table says how much time each part took; this says which part the resolution
waited for last. It is how pyspark 4.3.0 (a 456 MB sdist) showed up as the critical path of
``bench/cases/pypi-300``: its read ended 0.3 s before the resolution, 2.3 s after the last page.

    python -m bench.timeline bench/cases/pypi-300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.lock_in_process import add_lock_arguments, lock_in_process, replace_everywhere

__all__ = ["main"]


class _Clock:
    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one line at a time: fetch threads note side by side
        self.requests = 0

    def note(self, what: str) -> None:
        line = f"{(time.perf_counter() - self._started) * 1000:8.0f} ms  {what}\n"
        with self._writing:
            sys.stderr.write(line)
            sys.stderr.flush()

    def asked(self, every: int) -> None:
        with self._lock:
            self.requests += 1
            count = self.requests
        if count == 1 or count % every == 0:
            self.note(f"request #{count}")


def _watch(clock: _Clock, every: int) -> None:
    """Wraps the functions whose calls the timeline shows (this process only: it is the bench's)."""
    from lockd.index import fetcher, metadata_reader, sdist_worker  # noqa: PLC0415
    from lockd.resolver import budget  # noqa: PLC0415

    request = fetcher.Fetcher.request

    @contextmanager
    def counted(
        self: fetcher.Fetcher, method: str, url: str, headers: dict[str, str] | None = None
    ) -> Iterator[Any]:
        clock.asked(every)
        with request(self, method, url, headers) as answer:
            yield answer

    fetcher.Fetcher.request = counted  # type: ignore[method-assign]
    in_worker = sdist_worker.metadata_in_worker

    def by_child(file: Any, options: Any, counters: Any) -> bytes | None:
        clock.note(f"sdist {file.filename}: a child process reads it")
        return in_worker(file, options, counters)

    setattr(metadata_reader, "metadata_in_worker", by_child)  # the name metadata_reader calls  # noqa: B010
    sdist = metadata_reader.MetadataReader._sdist_metadata

    def timed_sdist(self: metadata_reader.MetadataReader, file: Any) -> bytes:
        clock.note(f"sdist {file.filename} ({(file.size or 0) / 1e6:.1f} MB): start")
        try:
            return sdist(self, file)
        finally:
            clock.note(f"sdist {file.filename}: end")

    metadata_reader.MetadataReader._sdist_metadata = timed_sdist  # type: ignore[method-assign]
    resolve = budget.timed_resolve

    def timed_resolve(*args: Any, **kwargs: Any) -> Any:
        clock.note("resolution: start")
        try:
            return resolve(*args, **kwargs)
        finally:
            clock.note("resolution: end")

    replace_everywhere("timed_resolve", resolve, timed_resolve)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline")
    add_lock_arguments(parser)
    parser.add_argument("--every", type=int, default=50, help="note every N-th request")
    args = parser.parse_args(argv)
    clock = _Clock()
    import lockd.cli  # noqa: PLC0415
    import lockd.resolver  # noqa: PLC0415, F401

    _watch(clock, args.every)
    with tempfile.TemporaryDirectory() as work:
        code = lock_in_process(args, Path(work))
        if code != 0:  # lockd lock said why, and wrote no lock
            clock.note(f"done: exit {code}, {clock.requests} requests from this process")
            return code
        pins = sum(1 for line in Path(work, "lock.txt").read_text().splitlines() if "==" in line)
    clock.note(f"done: exit {code}, {pins} pins, {clock.requests} requests from this process")
    return code


if __name__ == "__main__":
    sys.exit(main())
