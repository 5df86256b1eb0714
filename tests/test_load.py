"""Load: mixed traffic against a 2-worker server on PostgreSQL, with no errors and flat memory.

Cache hits (an input already locked), new resolutions (inputs nobody locked before), drift and
lock reads, from 8 client threads for `LOCKD_LOAD_SECONDS` (120 by default). The resident set
of the server and its workers (VmRSS from /proc) is read after a warm-up and at the end, and
printed with the request and error counts.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from fixtures.served_index import WatchedIndex
from tests.support import PostgresDatabases, StartLockd

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LINUX = {"platform": "linux_x86_64", "python": "3.11"}
SECONDS = float(os.environ.get("LOCKD_LOAD_SECONDS", "120"))
THREADS = 8
# Memory may grow by caches warming (index pages, SQLAlchemy pools) but not with the request count.
RSS_GROWTH_LIMIT = 1.5
RSS_SLACK_KB = 40 * 1024


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in found:
            found.append(int(entry.name))
    return found


def rss_kb(pid: int) -> dict[int, int]:
    """VmRSS in kB of `pid` and its children (uvicorn's supervisor and workers)."""
    sizes = {}
    for child in _process_tree(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes[child] = int(line.split()[1])
    return sizes


def test_two_minutes_of_mixed_traffic(
    start_lockd: StartLockd, postgres_databases: PostgresDatabases, fixture_index: WatchedIndex
) -> None:
    server = start_lockd(postgres_databases.create(), workers=2)
    assert server.process is not None
    hot = "lockd-fx-plain\nlockd-fx-extras[speedups]\n"
    with server.client("admin", timeout=60) as admin:
        first = admin.post("/lock", params=LINUX, content=hot, headers={"content-type": "text/plain"})
        assert first.status_code == 201, first.text
        digest = first.headers["input-digest"]
        assert admin.post("/v1/drift/runs", params={"wait": "true"}).status_code == 200
    fresh = itertools.count(1)
    counts: Counter[str] = Counter()
    errors: list[str] = []
    guard = threading.Lock()

    def one(client: httpx.Client, turn: int) -> tuple[str, httpx.Response]:
        kind = turn % 20
        if kind < 11:
            return "cache-hit", client.post(
                "/lock", params=LINUX, content=hot, headers={"content-type": "text/plain"}
            )
        if kind < 13:
            text = f"lockd-fx-plain!=0.0.{next(fresh)}\n"
            return "new-resolution", client.post(
                "/lock", params=LINUX, content=text, headers={"content-type": "text/plain"}
            )
        if kind < 16:
            return "drift-read", client.get("/v1/drift")
        if kind < 17:
            return "dashboard", client.get("/dashboard")
        if kind < 18:
            return "lock-read", client.get(f"/v1/locks/{digest}/requirements.txt")
        return "list", client.get("/v1/locks", params={"limit": 20})

    def drive(deadline: float, seed: int) -> None:
        with server.client("admin", timeout=60) as client:
            for turn in itertools.count(seed):
                if time.monotonic() >= deadline:
                    return
                try:
                    kind, response = one(client, turn)
                except httpx.HTTPError as exc:
                    with guard:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with guard:
                    counts[kind] += 1
                    expected = (200, 201) if kind == "new-resolution" else (200,)
                    if response.status_code not in expected:
                        errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")

    def burst(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=drive, args=(deadline, n * 7)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)

    burst(min(10.0, SECONDS / 6))  # warm-up: caches, pools, imports
    warm = sum(counts.values())
    start_rss = rss_kb(server.process.pid)
    assert len(start_rss) >= 3, f"expected a supervisor and 2 workers: {start_rss}"
    started = time.monotonic()
    burst(SECONDS)
    elapsed = time.monotonic() - started
    end_rss = rss_kb(server.process.pid)
    total = sum(counts.values()) - warm
    print(
        f"\nload: {total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), {len(errors)} errors; "
        f"by kind {dict(counts)}; RSS kB start {start_rss} (sum {sum(start_rss.values())}), "
        f"end {end_rss} (sum {sum(end_rss.values())})"
    )
    assert not errors, errors[:10]
    assert counts["new-resolution"] > 0 and counts["cache-hit"] > counts["new-resolution"]
    assert set(end_rss) == set(start_rss), "a worker died or was replaced during the run"
    for pid, start in start_rss.items():
        assert end_rss[pid] <= start * RSS_GROWTH_LIMIT + RSS_SLACK_KB, (pid, start, end_rss[pid])
    with server.client("read") as client:
        assert client.get("/readyz").status_code == 200
