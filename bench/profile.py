"""Where lockd's resolution spends its time: one ``resolve()`` under pyinstrument.

    python -m bench.profile CASE [--warm] [--real-pypi] [--latency-ms 20] [--html out.html]

Cold profiles a fresh `IndexClient`; ``--warm`` resolves once untimed and profiles the second run.
pyinstrument is not a project dependency: install it into the venv to use this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cases import FIXTURE_CASES, SHARED_CASES, load_cases
from bench.indexes import FixtureIndexProcess, fixture_setup, pypi_setup
from bench.resolution import build_request, new_client, resolve_in_process

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("case")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--real-pypi", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--html", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler  # noqa: PLC0415  (optional tool, not a dependency)
    except ImportError:
        print("pyinstrument is not installed: .venv/bin/pip install pyinstrument", file=sys.stderr)
        return 2
    source = SHARED_CASES if args.real_pypi else FIXTURE_CASES
    cases = load_cases(source, "pypi" if args.real_pypi else "fixture", [args.case])
    if not cases:
        print(f"no case {args.case!r} in {source}", file=sys.stderr)
        return 2
    with FixtureIndexProcess.start(args.latency_ms) as fixture:
        setup = pypi_setup(fixture) if args.real_pypi else fixture_setup(fixture)
        request = build_request(cases[0], setup)
        client = new_client()
        try:
            if args.warm:
                resolve_in_process(request, client)
            profiler = Profiler(interval=0.001)
            profiler.start()
            result = resolve_in_process(request, client)
            profiler.stop()
        finally:
            client.close()
    print(result, file=sys.stderr)
    if args.html is not None:
        args.html.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
