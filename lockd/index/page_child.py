"""The page child's side of `page_worker`: jobs read from stdin, pages parsed (and fetched), answers to stdout.

A thread reads jobs as the parent writes them, so the parent's writes never wait on a parse.
A parse job waits in `_Jobs`, ranked by arrival plus about its parse time, and the main thread
parses one at a time, the lowest ranked first. A fetch job (a server's pages, `PageFetch`) goes
to one of the child's fetch threads, which fetches the page with the child's own `Fetcher`
(built from the parent's limits, never with credentials) and queues its body as a parse job;
a body the parent named as the one it last parsed is answered at once, unparsed. Fetching here
takes the page's bytes, TLS and HTTP parsing off the parent's GIL: on a cold 200-pin `POST
/lock`, fetching its 73 MB of pages was about 0.5 s of the server's CPU.

Anything but a page (not 200, an error, a page that does not parse) is answered `_NOT_FETCHED`:
the parent fetches it itself and meets the error with its own context. Started with
`--fetches`, the child loads the HTTP stack at start; otherwise only the parsers (a cold `lockd
lock` waits for the child's start-up with its first pages in hand).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from lockd.deadline import deadline_scope
from lockd.index.page_worker import (
    _ANSWER,
    _FAILED,
    _FETCHED,
    _FORM,
    _JOB,
    _LATE,
    _MAX_HEADER,
    _META,
    _NO_FORM,
    _NOT_FETCHED,
    _SAME,
    CHILD_FETCHES,
    FetchLimits,
    PageFetch,
    PageJob,
    page_source,
)

if TYPE_CHECKING:
    from lockd.index.fetcher import Fetcher

__all__ = ["main"]

# A job waiting in the child is ranked by when it arrived plus about what parsing its body takes
# (the child's parse and form of PyPI's JSON pages: 30-60 ms a MB): a small page is no longer
# parsed after a big one that came in shortly before it, and a big page waits behind at most
# about its own parse time's worth of later, smaller pages. bench/cases/pypi-25, cold `lockd
# lock`: tzdata's page (28 KiB) had waited 55 ms behind numpy's and fonttools' (3.2 MB) in turn.
_SECONDS_PER_BYTE = 60e-9


def main() -> int:
    """The child: jobs from stdin, answers to stdout, until stdin ends."""
    from lockd.allocator import return_freed_memory  # noqa: PLC0415

    return_freed_memory()  # a server's child lives long: a big page's buffers go back after it
    answers = _Answers(sys.stdout.buffer)
    jobs = _Jobs()
    fetches = _Fetches(jobs, answers) if "--fetches" in sys.argv[1:] else None
    if fetches is not None:  # its CA bundle is read while the parsers load, not at its first fetch
        from lockd.index.tls import prepare_tls_context  # noqa: PLC0415

        prepare_tls_context()
    threading.Thread(
        target=_read_jobs, args=(sys.stdin.buffer, jobs, fetches), name="jobs", daemon=True
    ).start()
    # The parsers load now, while the first body is still on its way, not with it; the HTTP
    # stack only to fetch pages (a third of the start-up, which a cold `lockd lock` waits for).
    from lockd.simple.json_form import json_page_form  # noqa: F401, PLC0415
    from lockd.simple.page_parse import page_form  # noqa: F401, PLC0415
    from lockd.simple.parser_identity import parser_identity  # noqa: PLC0415

    parser_identity()
    if fetches is not None:
        from lockd.index.fetcher import Fetcher  # noqa: F401, PLC0415
    from lockd.collector import tune_collector  # noqa: PLC0415

    # As in the parent: a page's form is thousands of short-lived objects and no cycles, and
    # the default thresholds ran the collector over them again and again (pypi-200's 205
    # pages: 0.65-0.71 s of CPU to form them, 0.61-0.64 s tuned; 6 alternating runs each).
    tune_collector()
    while (job := jobs.take()) is not None:
        status, form = _work(job.header, job.body, job.deadline)
        if job.meta is None:
            answers.put(job.job_id, status, form)
        elif status == _FORM:
            answers.put(job.job_id, _FETCHED, _with_meta(job.meta, form))
        else:
            answers.put(job.job_id, _LATE if status == _LATE else _NOT_FETCHED, b"")
    return jobs.exit_code


@dataclass(frozen=True, slots=True, order=True)
class _Queued:
    rank: float
    job_id: int
    header: dict[str, object] = field(compare=False)
    body: bytes = field(compare=False)
    deadline: float | None = field(compare=False)  # time.monotonic()
    meta: dict[str, object] | None = field(default=None, compare=False)  # a fetched page's


class _Jobs:
    """The jobs read and not yet parsed, lowest rank first. Thread-safe."""

    def __init__(self) -> None:
        self._queued: list[_Queued] = []
        self._changed = threading.Condition()
        self._ended = False
        self.exit_code = 0

    def put(self, job: _Queued) -> None:
        with self._changed:
            heapq.heappush(self._queued, job)
            self._changed.notify()

    def end(self, exit_code: int) -> None:
        """No more jobs come; those still queued are not wanted (the parent closed the pipe)."""
        with self._changed:
            self._ended, self.exit_code = True, exit_code
            self._changed.notify()

    def take(self) -> _Queued | None:
        """The next job to parse, waiting for one; None once the jobs ended."""
        with self._changed:
            while not self._queued and not self._ended:
                self._changed.wait()
            return None if self._ended else heapq.heappop(self._queued)


class _Answers:
    """Answers written whole, one at a time, by the parsing thread and the fetch threads."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def put(self, job_id: int, status: int, payload: bytes) -> None:
        with self._lock:
            self._out.write(_ANSWER.pack(job_id, status, len(payload)))
            self._out.write(payload)
            self._out.flush()


def _read_jobs(stdin: IO[bytes], jobs: _Jobs, fetches: _Fetches | None = None) -> None:
    """Reads jobs as they come, so the parent's writes never wait on a parse, until stdin ends."""
    exit_code = 0
    try:
        while True:
            head = stdin.read(_JOB.size)
            if len(head) < _JOB.size:
                return
            job_id, header_bytes, body_bytes = _JOB.unpack(head)
            if header_bytes > _MAX_HEADER:
                exit_code = 2
                return
            header = json.loads(stdin.read(header_bytes))
            body = stdin.read(body_bytes)
            if len(body) < body_bytes:
                return
            if type(header) is not dict:
                exit_code = 2
                return
            now = time.monotonic()
            left = header.pop("seconds_left", None)
            deadline = None if left is None else now + float(left)
            if "fetch" in header:
                if fetches is None:  # started without the HTTP stack: the parent fetches it
                    exit_code = 2
                    return
                fetches.submit(job_id, header["fetch"], deadline)
                continue
            jobs.put(_Queued(now + len(body) * _SECONDS_PER_BYTE, job_id, header, body, deadline))
    except (OSError, ValueError, TypeError):  # not the protocol: the parent parses its pages itself
        exit_code = 2
    finally:
        jobs.end(exit_code)


def _work(header: dict[str, object], body: bytes, deadline: float | None) -> tuple[int, bytes]:
    from packaging.utils import NormalizedName  # noqa: PLC0415

    from lockd.errors import ResolutionTimeout  # noqa: PLC0415  # the child's imports, on its core
    from lockd.simple.page_parse import page_form  # noqa: PLC0415

    try:
        job = PageJob(**header)  # type: ignore[arg-type]
        with deadline_scope(deadline):
            name = NormalizedName(job.name)  # as the caller normalized it
            form = page_form(
                body,
                job.content_type,
                job.final_url,
                name,
                job.url,
                max_files=job.max_files,
                source=job.source,
            )
    except ResolutionTimeout:
        return _LATE, b""
    except Exception:  # the caller parses it again and raises the error, with its context
        return _FAILED, b""
    return (_NO_FORM, b"") if form is None else (_FORM, form)


def _with_meta(meta: dict[str, object], form: bytes) -> bytes:
    encoded = json.dumps(meta).encode()
    return _META.pack(len(encoded)) + encoded + form


class _Fetches:
    """The child's fetch threads and fetchers (one per distinct set of limits, normally one)."""

    def __init__(self, jobs: _Jobs, answers: _Answers) -> None:
        self._jobs = jobs
        self._answers = answers
        self._pool = ThreadPoolExecutor(CHILD_FETCHES, thread_name_prefix="fetch")
        self._fetchers: dict[FetchLimits, Fetcher] = {}
        self._lock = threading.Lock()

    def submit(self, job_id: int, fields: object, deadline: float | None) -> None:
        if type(fields) is not dict or type(fields.get("limits")) is not dict:
            raise TypeError("a fetch job names its page and limits")
        job = PageFetch(**{**fields, "limits": FetchLimits(**fields["limits"])})
        self._pool.submit(self._fetch, job_id, job, deadline)

    def _fetcher(self, limits: FetchLimits) -> Fetcher:
        from lockd.index.fetcher import Fetcher  # noqa: PLC0415
        from lockd.index.options import ClientOptions  # noqa: PLC0415
        from lockd.index.stats import FetchCounters  # noqa: PLC0415

        with self._lock:
            fetcher = self._fetchers.get(limits)
            if fetcher is None:
                options = ClientOptions(
                    timeout=limits.timeout,
                    max_connections=limits.max_connections,
                    max_page_bytes=limits.max_page_bytes,
                    max_compression_ratio=limits.max_compression_ratio,
                    user_agent=limits.user_agent,
                )
                fetcher = self._fetchers[limits] = Fetcher(options, FetchCounters())
            return fetcher

    def _fetch(self, job_id: int, job: PageFetch, deadline: float | None) -> None:
        from lockd.errors import ResolutionTimeout  # noqa: PLC0415
        from lockd.index.body import read_limited  # noqa: PLC0415
        from lockd.index.stats import FetchCounters  # noqa: PLC0415
        from lockd.simple.media_types import ACCEPT_HEADER  # noqa: PLC0415

        try:
            fetcher = self._fetcher(job.limits)
            counted = FetchCounters()  # this page's bytes as received, for the parent's counters
            with (
                deadline_scope(deadline),
                fetcher.request("GET", job.url, headers={"Accept": ACCEPT_HEADER}) as response,
            ):
                if response.status_code != 200:
                    self._answers.put(job_id, _NOT_FETCHED, b"")
                    return
                body = read_limited(response, job.url, fetcher.page_limit, counted)
                content_type = response.media_type
                final_url = str(response.url)
        except ResolutionTimeout:
            self._answers.put(job_id, _LATE, b"")
            return
        except Exception:  # the parent fetches it again and meets the error itself
            self._answers.put(job_id, _NOT_FETCHED, b"")
            return
        sha256 = hashlib.sha256(body).hexdigest()
        meta: dict[str, object] = {
            "sha256": sha256,
            "content_type": content_type,
            "final_url": final_url,
            "body_bytes": counted.snapshot().bytes_fetched,
            "raw": len(body) < job.parse_from,
        }
        if sha256 == job.known:
            self._answers.put(job_id, _SAME, _with_meta(meta, b""))
            return
        if meta["raw"]:  # parsed there: it costs less than a form and its decoding
            self._answers.put(job_id, _FETCHED, _with_meta(meta, body))
            return
        source = page_source(job.url, job.name, sha256, content_type, final_url, job.max_files)
        header: dict[str, object] = {
            "url": job.url,
            "name": job.name,
            "content_type": content_type,
            "final_url": final_url,
            "max_files": job.max_files,
            "source": source,
        }
        rank = time.monotonic() + len(body) * _SECONDS_PER_BYTE
        self._jobs.put(_Queued(rank, job_id, header, body, deadline, meta))


if __name__ == "__main__":
    sys.exit(main())
