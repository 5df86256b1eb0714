"""The page child as a cold `lockd lock` waits on it: what it loads, the order it parses in, when it starts.

A cold run hands the child its first pages about 40 ms after its first request, so the child's
start-up is on the critical path: it loads the parsers and never the HTTP stack, and `lockd
lock` starts it before loading its own client and resolver. Pages wait in the child ranked by
arrival plus their size, so a small page is not parsed after a big one that came in just before
it. Real children throughout (`python -c`, this interpreter); the queue also on its own, fed
frames as the parent writes them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fixtures.served_index import WatchedIndex
from lockd.cli import main
from lockd.index import page_child, page_worker
from lockd.index.client import IndexClient
from lockd.index.page_worker import PageJob, PageWorker
from tests.index.test_page_worker import _JSON, _URL, _json_page
from tests.support import ROOT, child_pids, wait_until

_MAX_FILES = 100_000


def test_the_child_loads_the_parsers_and_not_the_http_stack() -> None:
    code = (
        "import json, sys\n"
        "from lockd.index.page_child import main\n"
        "main()\n"  # stdin is empty: it loads what it loads, then ends
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, cwd=ROOT, check=True
    )
    loaded = set(json.loads(done.stdout.decode().splitlines()[-1]))
    assert {
        "lockd.simple.json_form",
        "lockd.simple.json_page",
        "lockd.simple.page_form",
        "lockd.simple.page_parse",
        "msgspec",
    } <= loaded
    http = {
        "ssl",
        "h11",
        "httpcore",
        "lockd.index.http11",
        "lockd.index.fetcher",
        "lockd.index.pages",
        "lockd.index.client",
    }
    assert not loaded & http


def _frame(job_id: int, body: bytes, *, header: dict[str, object] | None = None) -> bytes:
    encoded = json.dumps(header if header is not None else {"seconds_left": None, "n": job_id}).encode()
    return page_worker._JOB.pack(job_id, len(encoded), len(body)) + encoded + body


class _Held:
    """Stands in for `_Jobs` while the reader runs: holds what it puts, as jobs that arrived
    while the child was parsing another page."""

    def __init__(self) -> None:
        self.jobs: list[page_child._Queued] = []
        self.exit_code: int | None = None

    def put(self, job: page_child._Queued) -> None:
        self.jobs.append(job)

    def end(self, exit_code: int) -> None:
        self.exit_code = exit_code


def _queued(frames: bytes) -> tuple[list[int], int | None]:
    """The job ids in the order the child takes them, once all of `frames` were read; its exit code."""
    held = _Held()
    page_child._read_jobs(io.BytesIO(frames), held)  # type: ignore[arg-type]
    jobs = page_child._Jobs()
    for job in held.jobs:
        jobs.put(job)
    return [jobs.take().job_id for _ in held.jobs], held.exit_code  # type: ignore[union-attr]


def test_jobs_that_arrive_together_are_parsed_smallest_first() -> None:
    frames = _frame(1, b"x" * 3_000_000) + _frame(2, b"x" * 20_000) + _frame(3, b"x" * 700_000)
    taken, exit_code = _queued(frames)
    assert taken == [2, 3, 1]
    assert exit_code == 0


def test_a_big_job_waits_behind_later_small_ones_only_about_its_own_parse_time() -> None:
    jobs = page_child._Jobs()
    size = 1_000_000  # ranked 60 ms after it arrived
    big = page_child._Queued(100.0 + size * page_child._SECONDS_PER_BYTE, 1, {}, b"", None)
    sooner = page_child._Queued(100.05, 2, {}, b"", None)  # a small page 50 ms later goes first
    later = page_child._Queued(100.07, 3, {}, b"", None)  # one 70 ms later does not
    for job in (later, big, sooner):
        jobs.put(job)
    assert [jobs.take().job_id for _ in range(3)] == [2, 1, 3]  # type: ignore[union-attr]


def test_frames_outside_the_protocol_end_the_jobs_with_exit_code_2() -> None:
    too_big = page_worker._JOB.pack(1, page_worker._MAX_HEADER + 1, 0)
    assert _queued(too_big) == ([], 2)
    not_json = page_worker._JOB.pack(1, 3, 0) + b"{x}"
    assert _queued(not_json) == ([], 2)
    cut_short = _frame(1, b"x" * 100)[:-10]
    assert _queued(cut_short) == ([], 0)  # the parent closed the pipe mid-page: nothing to answer


def test_a_small_page_sent_after_a_big_one_is_answered_first() -> None:
    worker = PageWorker(from_bytes=1, max_form_bytes=256 * 1024 * 1024)
    tiny, big = _json_page(versions=4), _json_page(versions=10_000)  # 10 MB, ~0.4 s to parse
    # 1 MB, ~40 ms: answered that long after the first page, so the threads that wait for the
    # two answers append in the order the child answered, even on a loaded machine.
    small = _json_page(versions=1_000)
    longest = _json_page(versions=25_000)  # 26 MB, ~1.2 s: the page the child is busy with
    done: list[str] = []

    def ask(name: str, body: bytes) -> None:
        job = PageJob(
            url=_URL, name="demo-pkg", content_type=_JSON, final_url=_URL, max_files=_MAX_FILES, source=name
        )
        assert worker.form(job, body) is not None
        done.append(name)

    try:
        others = child_pids()
        ask("warm-up", tiny)  # the child is up
        (pid,) = child_pids() - others
        started = _cpu_seconds(pid)
        first = threading.Thread(target=ask, args=("first", longest))
        first.start()
        # The child is parsing the first page once it has spent 0.3 s of CPU on it (reading its
        # bytes from the pipe takes a few ms): waiting a fixed 50 ms instead, on a loaded machine
        # the page had not crossed the pipe yet and the small one went ahead of it.
        wait_until(lambda: _cpu_seconds(pid) - started >= 0.3, 30.0, "the child never parsed the first page")
        behind = [
            threading.Thread(target=ask, args=(name, body)) for name, body in (("big", big), ("small", small))
        ]
        for thread in behind:
            thread.start()
            time.sleep(0.01)  # in this order
        for thread in (first, *behind):
            thread.join(60.0)
    finally:
        worker.close()
    assert done == ["warm-up", "first", "small", "big"]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("setting", ["131072", "0"])
def test_lockd_lock_starts_its_page_child_before_its_index_client_and_ends_it(
    fixture_index: WatchedIndex,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
) -> None:
    monkeypatch.setenv("LOCKD_PAGE_WORKER_FROM", setting)
    events: list[str] = []
    start_soon, client_init = PageWorker.start_soon, IndexClient.__init__

    def noted_start(self: PageWorker) -> None:
        events.append("child")
        start_soon(self)

    def noted_client(self: IndexClient, *args: object, **kwargs: object) -> None:
        events.append("client")
        client_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PageWorker, "start_soon", noted_start)
    monkeypatch.setattr(IndexClient, "__init__", noted_client)
    requirements = tmp_path / "requirements.in"
    requirements.write_text("lockd-fx-plain\n")
    before = child_pids()
    # --no-cache: no store, and the fixture's pages are all below the threshold, so nothing but
    # the early start starts a child.
    code = main(["lock", str(requirements), "--platform", "linux_x86_64", "--python", "3.11", "--no-cache",
                 "--index-url", fixture_index.pypi_url, "--pytorch-index-url", fixture_index.pytorch_base])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "lockd-fx-plain==" in capsys.readouterr().out
    assert events[:2] == (["child", "client"] if setting != "0" else ["client"])
    deadline = time.monotonic() + 5.0
    while child_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not child_pids() - before  # ended with the run
