"""``python -m bench.range_requests [URL] [--requests N]``: CPU per range request through lockd's fetcher.

A cold `lockd lock` reads most wheels' METADATA through two or three range requests each (about
400 requests for a 200-pin stack), from the 64 KiB tail of the file backwards; what each costs
in CPU is the HTTP stack's share of a cold run. This sends ``N`` such requests one after another
on one kept-alive connection (after one untimed request that opens it) and prints the CPU this
thread spent per request (`time.thread_time`, so waiting for the network is not in it) beside
the wall time. Default URL: the newest numpy wheel for CPython 3.11 on Linux, found through PyPI's page.

    python -m bench.range_requests
    python -m bench.range_requests https://files.pythonhosted.org/…/x.whl --requests 200

Measured on 6 Dec 2026 (2 cores, PyPI through this machine's proxy), 60 requests, three runs of
each, interleaved: 0.43-0.44 ms of CPU a request through httpcore and h11 (lockd at a3d2fb0),
0.25-0.26 ms through `lockd.index.http11`, at 1.7-1.9 ms of wall time each. A file the proxy had
not kept (its ranges fetched upstream, 60-70 ms each, arriving in more pieces): 1.04-1.13 against
0.66-0.75 ms.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request

from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters

__all__ = ["main", "per_request"]

_PAGE = "https://pypi.org/simple/numpy/"
_CHUNK = 65536
_WHEEL = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"  # the newest numpy for CPython 3.11


def _default_url() -> tuple[str, int]:
    request = urllib.request.Request(_PAGE, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        files = json.load(response)["files"]
    wheel = next(f for f in reversed(files) if f["filename"].endswith(_WHEEL))
    return wheel["url"], int(wheel["size"])


def _size(fetcher: Fetcher, url: str) -> int:
    with fetcher.request("HEAD", url) as response:
        return int(response.headers.get("content-length"))


def per_request(url: str, size: int, requests: int) -> tuple[float, float]:
    """CPU and wall seconds per range request of up to 64 KiB from the end of `url`'s `size` bytes."""

    class _File:  # what `read_range` reads of a `DistFile`
        def __init__(self) -> None:
            self.url = url

    fetcher = Fetcher(ClientOptions(), FetchCounters())
    file = _File()
    chunks = max(1, size // _CHUNK)
    try:
        fetcher.read_range(file, max(0, size - 16), size)  # type: ignore[arg-type]  # opens the connection
        cpu, wall = time.thread_time(), time.perf_counter()
        for i in range(requests):
            end = size - _CHUNK * (i % chunks)
            fetcher.read_range(file, max(0, end - _CHUNK), end)  # type: ignore[arg-type]
        return (time.thread_time() - cpu) / requests, (time.perf_counter() - wall) / requests
    finally:
        fetcher.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.range_requests", description=__doc__.split("\n")[0]
    )
    parser.add_argument("url", nargs="?", default=None, help="a file that answers range requests")
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args(argv)
    if args.url is None:
        url, size = _default_url()
    else:
        fetcher = Fetcher(ClientOptions(), FetchCounters())
        try:
            url, size = args.url, _size(fetcher, args.url)
        finally:
            fetcher.close()
    cpu, wall = per_request(url, size, args.requests)
    print(f"{args.requests} range requests to {url}")
    print(f"CPU {cpu * 1000:.3f} ms a request (this thread), wall {wall * 1000:.2f} ms")


if __name__ == "__main__":
    main()
