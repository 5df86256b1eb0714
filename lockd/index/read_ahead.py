"""A download received on a thread of its own while its reader works through what already came.

A big sdist that needs its egg-info (pyspark's 456 MB tar, whose egg-info is at its end) is
received, hashed and inflated in one pass (`lockd.sdist_sources.tar_sdist_metadata`). On one
thread those take turns: receiving (TLS, HTTP framing) about 0.6 s of CPU, hashing 0.2 s,
inflating 1.2 s. All three release the GIL for most of their work, so receiving and hashing on a
second thread run beside the inflating. pyspark 4.3.0's metadata from real PyPI
(`python -m bench.sdist_metadata pyspark 4.3.0`): 2.4-2.8 s when the archive was spooled to disk
and read again, 2.05 s in one pass, 1.4-1.9 s in one pass with the read-ahead.

The reader is never more than `max_bytes` behind (memory stays bounded); the receiving thread
runs in a copy of the caller's context, so the caller's deadline (`lockd.deadline`) bounds it
too; an error it meets is raised to the reader at the point in the stream where it happened;
`close` stops it and waits for it, so the response is never read by two threads, nor after the
caller closed it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextvars import copy_context
from types import TracebackType

from lockd.index.body import Hasher

__all__ = ["ReadAhead"]


class ReadAhead(Iterator[bytes]):
    """Iterates `chunks` on a thread of its own, at most `max_bytes` ahead of the caller. Use in `with`."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        max_bytes: int,
        hasher: Hasher | None = None,
        name: str = "lockd-read-ahead",
    ) -> None:
        """`hasher`: updated with each chunk as it is received, on the receiving thread."""
        self._chunks = chunks
        self._hasher = hasher
        self._max_bytes = max_bytes
        self._ready: deque[bytes] = deque()
        self._held = 0  # bytes received and not yet taken
        self._done = False  # the chunks ended, or failed
        self._error: BaseException | None = None
        self._stopped = False
        self._changed = threading.Condition()
        context = copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._receive,), name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __next__(self) -> bytes:
        with self._changed:
            while not self._ready and not self._done:
                self._changed.wait()
            if self._ready:
                # Everything received so far, at once: each wake-up of the reader takes the GIL
                # again, so one per arrival would wait on other threads once per 64 KiB.
                chunk = self._ready.popleft() if len(self._ready) == 1 else b"".join(self._ready)
                self._ready.clear()
                self._held = 0
                self._changed.notify_all()
                return chunk
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        raise StopIteration

    def close(self) -> None:
        """Stops receiving (after the chunk in hand) and waits until the receiving thread has ended."""
        with self._changed:
            self._stopped = True
            self._ready.clear()
            self._held = 0
            self._changed.notify_all()
        self._thread.join()

    def _receive(self) -> None:
        try:
            for chunk in self._chunks:
                if self._hasher is not None:
                    self._hasher.update(chunk)
                with self._changed:
                    while self._held >= self._max_bytes and not self._stopped:
                        self._changed.wait()
                    if self._stopped:
                        return
                    self._ready.append(chunk)
                    self._held += len(chunk)
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the reader, which raises it where it happened
            with self._changed:
                self._error = exc
        finally:
            try:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()  # a generator left early ends here, on the thread that ran it
            finally:
                with self._changed:
                    self._done = True
                    self._changed.notify_all()
