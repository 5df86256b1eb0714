"""CPU time to parse big PEP 691 project pages, and what a parsed page holds: the parse's own A/B footing.

    curl -H 'Accept: application/vnd.pypi.simple.v1+json' -o /tmp/page-botocore.json https://pypi.org/simple/botocore/
    python -m bench.page_parse /tmp/page-botocore.json /tmp/page-numpy.json ...

A page file is named ``page-<project>.json`` (or ``<project>.json``). Per page: the minimum over
``--repeat`` runs of process CPU for a cold parse (every memo of `lockd.simple.files` cleared
first, as for a page a process sees once), a warm one, and the target's `Finder` over the page;
then the bytes a parsed page holds (tracemalloc). Pages are not committed: fetch them first.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import lockd.simple.files as simple_files
from lockd.resolver.finder import Finder
from lockd.simple import ProjectPage, parse_json_page
from lockd.target import Target

__all__ = ["main"]

_MAX_FILES = 1_000_000


def _forget_memos() -> None:
    for value in vars(simple_files).values():
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _finder_of(page: ProjectPage, target: Target) -> Callable[[], Finder]:
    return lambda: Finder(page.name, page, target, as_of=None, prereleases=False)


def _measure(path: Path, target: Target, repeat: int) -> dict[str, object]:
    project = path.stem.removeprefix("page-")
    body = path.read_bytes()
    url = f"https://pypi.org/simple/{project}/"

    def parse() -> ProjectPage:
        return parse_json_page(body, url, project, max_files=_MAX_FILES)

    cold: list[float] = []
    warm: list[float] = []
    finder: list[float] = []
    for _ in range(repeat):
        _forget_memos()
        gc.collect()
        cold.append(_cpu(parse))
        warm.append(_cpu(parse))
        finder.append(_cpu(_finder_of(parse(), target)))
    gc.collect()
    tracemalloc.start()
    page = parse()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "page": project,
        "files": len(page.files),
        "cold_ms": round(min(cold) * 1000, 1),
        "warm_ms": round(min(warm) * 1000, 1),
        "finder_ms": round(min(finder) * 1000, 1),
        "held_kib": held // 1024,
        "parse_peak_kib": peak // 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.page_parse")
    parser.add_argument("pages", nargs="+", type=Path, help="PEP 691 JSON pages, page-<project>.json")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--platform", default="linux_x86_64")
    parser.add_argument("--python", default="3.11")
    args = parser.parse_args(argv)
    target = Target.of(args.platform, args.python)
    for path in args.pages:
        print(json.dumps(_measure(path, target, args.repeat)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
