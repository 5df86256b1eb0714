"""Big project pages parsed by a process of their own, handed back as their forms.

Parsing a page holds the GIL from its first byte to its last DistFile, and a cold resolution is
bound by that one GIL (a cold 200-pin `lockd lock` on PyPI: ~0.8 s of CPU parsing its pages and
~0.5 s writing their forms for the cache, of ~5 s in all, while fetch threads wait for the GIL
to read their sockets). Here one child process, started as `python -c` with the same interpreter
(when a serving worker starts, when `lockd lock` starts, when a client's page store first
misses, otherwise with the first page big enough), parses each big page with the same parser and
limits (`lockd.simple.page_parse`, which loads no HTTP stack: the child's start-up is what a cold
`lockd lock` waits for with its first pages in hand) and answers the page's form (`lockd.simple.page_form`), which this process
builds the page from in about a quarter of the parse's time; the parse itself runs on the
other core. The form is also what the CLI's cache keeps, so there it is written only once.

The child is a helper, never a judge: for any answer but a form (the page did not parse, the
form could not be written, the child died or is not there) the caller parses the body itself,
so every error is the one an in-process parse raises, with its context. The answer is bounded
(`max_form_bytes`) and checked as a form read from disk is (`decode_page`: digest, parser
identity, source, types). The child honours the caller's deadline; past it, with no answer, it
is killed and started again for the next page. One child per client (a service's fresh clients
share it). It reads pages as they are written and parses one at a time, the lowest ranked
first: arrival plus about its parse time (`_Queued`), so a small page is not parsed after a big
one that came in just before it. Frames on its pipes: a struct head, a JSON header, then the
body or the form.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import json
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import IO

from lockd.deadline import check_deadline, deadline_scope, seconds_left
from lockd.index.child_code import child_code

__all__ = ["PageJob", "PageWorker", "main"]

_JOB = struct.Struct("<QIQ")  # job id, header bytes, body bytes
_ANSWER = struct.Struct("<QBQ")  # job id, status, form bytes
_FORM, _NO_FORM, _FAILED, _LATE = range(4)
_MAX_HEADER = 64 * 1024
_PIPE_BYTES = 1024 * 1024  # fewer wake-ups per page than the default 64 KiB
_RESTART_AFTER = 30.0  # after a child could not be started, pages are parsed here this long
_CHILD = child_code("lockd.index.page_worker")  # what the child runs: `python -c`, this interpreter


@dataclass(frozen=True, slots=True, kw_only=True)
class PageJob:
    """What `parse_page` is given for one body, and the `source` its form must name."""

    url: str
    name: str
    content_type: str
    final_url: str
    max_files: int
    source: str


class PageWorker:
    """The child process of one client (or of clients sharing it). Thread-safe; `close` ends it.

    `from_bytes`: the smallest body worth a round trip (below it, parsing here costs less)."""

    def __init__(self, *, from_bytes: int, max_form_bytes: int) -> None:
        self.from_bytes = from_bytes
        self._max_form_bytes = max_form_bytes
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._unstartable_at: float | None = None
        self._starting = False  # `start_soon` was called
        self._closed = False

    def form(self, job: PageJob, body: bytes) -> bytes | None:
        """The form of `body` parsed as `job` says, from the child; None: parse it here.

        Raises `ResolutionTimeout` when the deadline passes while the child has the page."""
        child = self._running()
        return None if child is None else child.ask(job, body)

    def start_soon(self) -> None:
        """Starts the child in the background now, not with the first big page (its imports take
        ~0.1 s of its core); once, however often it is called."""
        with self._lock:
            if self._starting or self._closed:
                return
            self._starting = True
        threading.Thread(target=self._running, name="lockd-page-worker-start", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is not None:
            child.end()

    @property
    def started(self) -> bool:
        """Whether a child is running now (for tests and the benchmark)."""
        with self._lock:
            return self._child is not None and self._child.alive

    def _running(self) -> _Child | None:
        with self._lock:
            if self._closed:
                return None
            if self._child is not None and self._child.alive:
                return self._child
            now = time.monotonic()
            if self._unstartable_at is not None and now - self._unstartable_at < _RESTART_AFTER:
                return None
            try:
                self._child = _Child.start(self._max_form_bytes)
            except OSError:  # a container's process limit, no memory to fork
                self._child, self._unstartable_at = None, now
            return self._child


@dataclass(slots=True)
class _Pending:
    done: threading.Event
    status: int = _FAILED
    form: bytes = b""


class _Child:
    """One running child: jobs written under a lock, answers read by a thread of its own."""

    def __init__(self, process: subprocess.Popen[bytes], max_form_bytes: int) -> None:
        self._process = process
        self._max_form_bytes = max_form_bytes
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count()
        self.alive = True
        threading.Thread(target=self._read_answers, name="lockd-page-worker", daemon=True).start()

    @classmethod
    def start(cls, max_form_bytes: int) -> _Child:
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError, AttributeError, ValueError):  # Linux only; a hint
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
        return cls(process, max_form_bytes)

    def ask(self, job: PageJob, body: bytes) -> bytes | None:
        pending = _Pending(threading.Event())
        job_id = next(self._ids)
        with self._lock:
            if not self.alive:
                return None
            self._pending[job_id] = pending
        try:
            if not self._send(job_id, job, body):
                return None
            left = seconds_left()
            # Past the deadline the child stops by itself; the slack covers its answer.
            late = not pending.done.wait(None if left is None else max(left, 0.0) + 2.0)
            if late:
                self.end()  # stuck past the deadline: the next page gets a new child
        finally:
            with self._lock:
                self._pending.pop(job_id, None)
        if late or pending.status == _LATE:
            check_deadline(f"parsing {job.final_url}")
        return pending.form if pending.status == _FORM else None

    def _send(self, job_id: int, job: PageJob, body: bytes) -> bool:
        header = json.dumps({**asdict(job), "seconds_left": seconds_left()}).encode()
        stdin = self._process.stdin
        assert stdin is not None  # opened with a pipe
        while True:  # pages go one at a time; a thread waiting its turn still ends at the deadline
            left = seconds_left()
            if self._write_lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
                break
            check_deadline(f"waiting to parse {job.final_url}")
        try:
            stdin.write(_JOB.pack(job_id, len(header), len(body)) + header)
            stdin.write(body)
            stdin.flush()
        except (OSError, ValueError):  # the child is gone (a broken pipe, a closed file)
            self.end()
            return False
        finally:
            self._write_lock.release()
        return True

    def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # opened with a pipe
        try:
            while True:
                head = stdout.read(_ANSWER.size)
                if len(head) < _ANSWER.size:
                    return
                job_id, status, length = _ANSWER.unpack(head)
                if status not in (_FORM, _NO_FORM, _FAILED, _LATE) or length > self._max_form_bytes:
                    return  # not the protocol: the child is ended, its pages parsed here
                form = stdout.read(length)
                if len(form) < length:
                    return
                with self._lock:
                    pending = self._pending.get(job_id)
                if pending is not None:
                    pending.status, pending.form = status, form
                    pending.done.set()
        except (OSError, ValueError):
            return
        finally:
            self.end()

    def end(self) -> None:
        """Kills the child; every page waiting on it is parsed by its caller instead."""
        with self._lock:
            self.alive = False
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.done.set()  # status stays _FAILED
        with contextlib.suppress(OSError):
            self._process.kill()
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1.0)


# -- the child ---------------------------------------------------------------------------------


def main() -> int:
    """The child: jobs from stdin, answers to stdout, until stdin ends."""
    from lockd.allocator import return_freed_memory  # noqa: PLC0415

    return_freed_memory()  # a server's child lives long: a big page's buffers go back after it
    jobs = _Jobs()
    threading.Thread(target=_read_jobs, args=(sys.stdin.buffer, jobs), name="jobs", daemon=True).start()
    # The parsers load now, while the first body is still on its way, not with it; not the HTTP
    # stack, which the child never uses (a third of its start-up, which a cold `lockd lock` waits for).
    from lockd.simple.json_page import parse_json_page  # noqa: F401, PLC0415
    from lockd.simple.page_form import parser_identity  # noqa: PLC0415
    from lockd.simple.page_parse import parse_page  # noqa: F401, PLC0415

    parser_identity()
    stdout = sys.stdout.buffer
    while (job := jobs.take()) is not None:
        status, form = _work(job.header, job.body, job.deadline)
        _answer(stdout, job.job_id, status, form)
    return jobs.exit_code


# A job waiting in the child is ranked by when it arrived plus about what parsing its body takes
# (the child's parse and form of PyPI's JSON pages: 30-60 ms a MB): a small page is no longer
# parsed after a big one that came in shortly before it, and a big page waits behind at most
# about its own parse time's worth of later, smaller pages. bench/cases/pypi-25, cold `lockd
# lock`: tzdata's page (28 KiB) had waited 55 ms behind numpy's and fonttools' (3.2 MB) in turn.
_SECONDS_PER_BYTE = 60e-9


@dataclass(frozen=True, slots=True, order=True)
class _Queued:
    rank: float
    job_id: int
    header: dict[str, object] = field(compare=False)
    body: bytes = field(compare=False)
    deadline: float | None = field(compare=False)  # time.monotonic()


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


def _read_jobs(stdin: IO[bytes], jobs: _Jobs) -> None:
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
            jobs.put(_Queued(now + len(body) * _SECONDS_PER_BYTE, job_id, header, body, deadline))
    except (OSError, ValueError, TypeError):  # not the protocol: the parent parses its pages itself
        exit_code = 2
    finally:
        jobs.end(exit_code)


def _work(header: dict[str, object], body: bytes, deadline: float | None) -> tuple[int, bytes]:
    from packaging.utils import NormalizedName  # noqa: PLC0415

    from lockd.errors import ResolutionTimeout  # noqa: PLC0415  # the child's imports, on its core
    from lockd.simple.page_form import encode_page  # noqa: PLC0415
    from lockd.simple.page_parse import parse_page  # noqa: PLC0415

    try:
        job = PageJob(**header)  # type: ignore[arg-type]
        with deadline_scope(deadline):
            name = NormalizedName(job.name)  # as the caller normalized it
            page = parse_page(body, job.content_type, job.final_url, name, job.url, max_files=job.max_files)
            form = encode_page(page, job.source)
    except ResolutionTimeout:
        return _LATE, b""
    except Exception:  # the caller parses it again and raises the error, with its context
        return _FAILED, b""
    return (_NO_FORM, b"") if form is None else (_FORM, form)


def _answer(stdout: IO[bytes], job_id: int, status: int, form: bytes) -> None:
    stdout.write(_ANSWER.pack(job_id, status, len(form)))
    stdout.write(form)
    stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
