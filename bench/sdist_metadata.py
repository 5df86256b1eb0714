"""``python -m bench.sdist_metadata PROJECT VERSION [--repeat 3]``: one release's core metadata, cold.

Times ``IndexClient.fetch_metadata`` of each file of the release (a new client each run: nothing
cached), wall and CPU, against real PyPI by default. pyspark 4.3.0 (a 456 MB sdist whose
egg-info sits at its end) is the case that made `lockd.index.read_ahead`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from packaging.utils import canonicalize_name

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from lockd.index import IndexClient  # noqa: PLC0415  (PYTHONPATH may name another tree)

    parser = argparse.ArgumentParser(prog="python -m bench.sdist_metadata")
    parser.add_argument("project")
    parser.add_argument("version")
    parser.add_argument("--index-url", default="https://pypi.org/simple/")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    name = canonicalize_name(args.project)
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        with IndexClient() as client:
            page = client.project_page(args.index_url, name)
            for file in (f for f in page.files if str(f.version) == args.version):
                wall, cpu = time.perf_counter(), time.process_time()
                client.fetch_metadata(file)
                rows.setdefault(file.filename, []).append(
                    (time.perf_counter() - wall, time.process_time() - cpu)
                )
    if not rows:
        print(f"{name} {args.version}: no such release on {args.index_url}", file=sys.stderr)
        return 1
    for filename, runs in rows.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{filename}: {wall:.2f} s wall, {cpu:.2f} s CPU (median of {len(runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
