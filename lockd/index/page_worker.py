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
is killed and started again for the next page. With or without a deadline, a child that says
nothing for `silent_after` seconds while a job waits on it is stuck, not busy (its fetches are
bounded by the client's timeout, its parses by the page's bound): it is killed and the caller
does the job itself, so a library call with no deadline never waits on it for ever. One child
per client (a service's fresh clients share it). It reads pages as they are written and parses one at a time, the lowest ranked
first: arrival plus about its parse time, so a small page is not parsed after a big one that
came in just before it. A server's child also fetches pages (`fetch`, a `PageFetch`): the
child's side, and why, is `page_child`. Frames on its pipes: a struct head, a JSON header, then
the body or the answer's payload (a form, or a fetched page's meta and form or body).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import struct
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from lockd.deadline import check_deadline, seconds_left
from lockd.index.early_child import page_child_argv, popen
from lockd.index.early_child import take as take_early_child

if TYPE_CHECKING:
    from lockd.index.options import ClientOptions

__all__ = ["CHILD_FETCHES", "FetchLimits", "FetchedPage", "PageFetch", "PageJob", "PageWorker", "page_source"]

_JOB = struct.Struct("<QIQ")  # job id, header bytes, body bytes
_ANSWER = struct.Struct("<QBQ")  # job id, status, payload bytes
# A parse job's answer: its form, or none (not formable, failed, past the deadline). A fetch
# job's: what came (`_FETCHED`: meta and form; `_SAME`: meta only, the body the caller last
# parsed), or `_NOT_FETCHED`: any other outcome (not 200, an error, a page that did not parse),
# which the caller then meets itself, fetching the page again.
_FORM, _NO_FORM, _FAILED, _LATE, _FETCHED, _SAME, _NOT_FETCHED = range(7)
_STATUSES = frozenset(range(7))
_META = struct.Struct("<I")  # meta bytes, in front of a fetch job's form
_MAX_HEADER = 64 * 1024
_PIPE_BYTES = 1024 * 1024  # fewer wake-ups per page than the default 64 KiB
_RESTART_AFTER = 30.0  # after a child could not be started, pages are parsed here this long
# The least silence that ends a child: a job may queue behind the child's other pages, and a fetch
# spends up to the client's timeout connecting and as much again between two reads.
MIN_SILENCE = 60.0
_LOOK_EVERY = 1.0  # how often a waiting caller checks the child's silence
# Pages a child fetches at once, each on a connection of its own: the caller's connections
# already wait on the index's answers, and more threads there only contend for the child's GIL
# while it parses.
CHILD_FETCHES = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class PageJob:
    """What `parse_page` is given for one body, and the `source` its form must name."""

    url: str
    name: str
    content_type: str
    final_url: str
    max_files: int
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PageFetch:
    """A page for the child to fetch as well as parse: `known`, the sha256 (hex) of the body the
    caller last parsed for `url`, which the child then answers without parsing; `parse_from`,
    the smallest body the child parses (a smaller one comes back as it is, to parse there, as
    pages the caller fetches itself); `limits`, what the child's own fetcher is built with."""

    url: str
    name: str
    max_files: int
    known: str | None
    parse_from: int
    limits: FetchLimits


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """What the child's fetcher takes from the caller's `ClientOptions` (never credentials)."""

    timeout: float
    max_connections: int
    max_page_bytes: int
    max_compression_ratio: int
    user_agent: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedPage:
    """A page the child fetched: its body's sha256 (hex), bytes received and headers, and its
    form or, below `PageFetch.parse_from`, its body (neither: the body named as `known`)."""

    sha256: str
    content_type: str
    final_url: str
    body_bytes: int
    form: bytes | None
    body: bytes | None = None


def page_source(  # noqa: PLR0917  # the fields of one source, in its order
    url: str, name: str, sha256: str, content_type: str, page_url: str, max_files: int | None
) -> str:
    """Everything a parse of the page was given, as the text a form must name to stand for it."""
    return json.dumps([url, name, sha256, content_type, page_url, max_files], ensure_ascii=True)


class PageWorker:
    """The child process of one client (or of clients sharing it). Thread-safe; `close` ends it.

    `from_bytes`: the smallest body worth a round trip (below it, parsing here costs less);
    `fetches`: the child loads the HTTP stack at start, to fetch pages as well (`fetch`)."""

    @classmethod
    def for_options(cls, options: ClientOptions, *, fetches: bool) -> PageWorker | None:
        """The worker `options` ask for (`page_worker_from`; forms up to the page cache's bound), or
        None when they ask for none."""
        if options.page_worker_from is None:
            return None
        return cls(
            from_bytes=options.page_worker_from,
            max_form_bytes=options.page_cache_bytes,
            fetches=fetches,
            silent_after=max(MIN_SILENCE, 2 * options.timeout),
        )

    def __init__(
        self,
        *,
        from_bytes: int,
        max_form_bytes: int,
        fetches: bool = False,
        silent_after: float = MIN_SILENCE,
    ) -> None:
        self.from_bytes = from_bytes
        self.fetches = fetches
        self._max_form_bytes = max_form_bytes
        self._silent_after = silent_after
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._unstartable_at: float | None = None
        self._starting = False  # `start_soon` was called
        self._closed = False
        self._fetching = 0  # fetch jobs the child has now

    def form(self, job: PageJob, body: bytes) -> bytes | None:
        """The form of `body` parsed as `job` says, from the child; None: parse it here.

        Raises `ResolutionTimeout` when the deadline passes while the child has the page."""
        child = self._running()
        if child is None:
            return None
        status, payload = child.ask(asdict(job), body, f"parsing {job.final_url}")
        return payload if status == _FORM else None

    def fetch(self, job: PageFetch) -> FetchedPage | None:
        """The page fetched and parsed by the child; None: fetch it here (the child met something
        other than a page: the caller meets it again, with its own errors).

        Raises `ResolutionTimeout` when the deadline passes while the child has the page."""
        child = self._running()
        if child is None:
            return None
        with self._lock:
            self._fetching += 1
        try:
            status, payload = child.ask({"fetch": asdict(job)}, b"", f"asking {job.url}")
        finally:
            with self._lock:
                self._fetching -= 1
        if status not in (_FETCHED, _SAME) or len(payload) < _META.size:
            return None
        (size,) = _META.unpack_from(payload)
        rest = payload[_META.size + size :]
        try:
            meta = json.loads(payload[_META.size : _META.size + size])
            raw = meta["raw"] is True
            fetched = FetchedPage(
                sha256=str(meta["sha256"]),
                content_type=str(meta["content_type"]),
                final_url=str(meta["final_url"]),
                body_bytes=int(meta["body_bytes"]),
                form=rest if status == _FETCHED and not raw else None,
                body=rest if status == _FETCHED and raw else None,
            )
        except (ValueError, TypeError, KeyError):
            return None
        if status == _SAME and fetched.sha256 != job.known:
            return None
        return fetched

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
    def fetching(self) -> int:
        """How many `fetch` calls wait on the child now."""
        return self._fetching

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
                self._child = _Child.start(self._max_form_bytes, self._silent_after, fetches=self.fetches)
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

    def __init__(self, process: subprocess.Popen[bytes], max_form_bytes: int, silent_after: float) -> None:
        self._process = process
        self._max_form_bytes = max_form_bytes
        self._silent_after = silent_after
        self._heard = time.monotonic()  # when the child last answered (or started)
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count()
        self.alive = True
        threading.Thread(target=self._read_answers, name="lockd-page-worker", daemon=True).start()

    @classmethod
    def start(cls, max_form_bytes: int, silent_after: float, *, fetches: bool) -> _Child:
        argv = page_child_argv(fetches=fetches)
        # `lockd lock` spawned one before its settings loaded (`early_child`): adopted if it matches.
        process = take_early_child(argv) or popen(argv)
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError, AttributeError, ValueError):  # Linux only; a hint
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
        return cls(process, max_form_bytes, silent_after)

    def ask(self, job: dict[str, object], body: bytes, doing: str) -> tuple[int, bytes]:
        """The child's status and payload for `job`; `doing`: what a timeout says was under way."""
        pending = _Pending(threading.Event())
        job_id = next(self._ids)
        with self._lock:
            if not self.alive:
                return _FAILED, b""
            self._pending[job_id] = pending
        try:
            if not self._send(job_id, job, body, doing):
                return _FAILED, b""
            late = self._wait(pending)
        finally:
            with self._lock:
                self._pending.pop(job_id, None)
        if late or pending.status == _LATE:
            check_deadline(doing)
        return pending.status, pending.form

    def _wait(self, pending: _Pending) -> bool:
        """Waits for the answer; True: the deadline passed first. A child stuck past the deadline,
        or silent too long without one, is ended (its jobs then fail: their callers do them)."""
        left = seconds_left()
        now = time.monotonic()
        # Past the deadline the child stops by itself; the slack covers its answer.
        end_by = None if left is None else now + max(left, 0.0) + 2.0
        asked_at = now
        while True:
            wait = _LOOK_EVERY if end_by is None else min(_LOOK_EVERY, max(end_by - now, 0.0))
            if pending.done.wait(wait):
                return False
            now = time.monotonic()
            if end_by is not None and now >= end_by:
                self.end()  # stuck past the deadline: the next page gets a new child
                return True
            if now - max(self._heard, asked_at) >= self._silent_after:
                self.end()  # stuck: the caller does the job, the next page gets a new child
                return False

    def _send(self, job_id: int, job: dict[str, object], body: bytes, doing: str) -> bool:
        header = json.dumps({**job, "seconds_left": seconds_left()}).encode()
        stdin = self._process.stdin
        assert stdin is not None  # opened with a pipe
        while True:  # pages go one at a time; a thread waiting its turn still ends at the deadline
            left = seconds_left()
            if self._write_lock.acquire(timeout=-1 if left is None else max(left, 0.0)):
                break
            check_deadline(f"waiting for the page child, {doing}")
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
                if status not in _STATUSES or length > self._max_form_bytes + _MAX_HEADER:
                    return  # not the protocol: the child is ended, its pages parsed here
                form = stdout.read(length)
                if len(form) < length:
                    return
                with self._lock:
                    self._heard = time.monotonic()
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
