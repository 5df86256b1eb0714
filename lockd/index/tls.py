"""The TLS context https connections verify with, and a way to have it built before it is needed.

Building one reads the whole CA bundle (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, else certifi's,
as httpx and pip choose): about 20 ms of CPU here, which a new server's first cold resolution
paid twice, in the server before its first metadata read and in the page child before its first
page. OpenSSL reads the bundle without holding the GIL, so `prepare_tls_context` has it built on
a thread of its own while the process starts (`Service.open`, the fetching page child), and the
first client that needs one takes it (`tls_context`). Any later client builds its own, as every
client did before: a prepared context is used once, and only for the environment it was built
from.

`lockd lock` prepares none: its first https connection reads the bundle on a fetch thread while
the resolver loads, and a run its cache answers needs no connection at all (read ahead, the
bundle cost a warm 25-pin run 20 ms of the core its page child was starting on: 315 -> 337 ms,
10 interleaved runs each).
"""

from __future__ import annotations

import os
import ssl
import threading

__all__ = ["prepare_tls_context", "tls_context"]

_Source = tuple[str, str]  # SSL_CERT_FILE, SSL_CERT_DIR ("" when unset)


def _source() -> _Source:
    return os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")


def _build(source: _Source) -> ssl.SSLContext:
    cafile, capath = source
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    import certifi  # noqa: PLC0415  (a plain-http index never needs the bundle)

    return ssl.create_default_context(cafile=certifi.where())


class _Building:
    """One context being built on its own thread; `take` waits for it."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self._done = threading.Event()
        self._context: ssl.SSLContext | None = None

    def run(self) -> None:
        try:
            self._context = _build(self.source)
        except Exception:  # the taker builds it again and meets the error itself
            pass
        finally:
            self._done.set()

    def take(self) -> ssl.SSLContext | None:
        self._done.wait()
        return self._context


_lock = threading.Lock()
_prepared: _Building | None = None


def prepare_tls_context() -> None:
    """Starts building the next `tls_context` on a thread of its own; does nothing if one is under way."""
    global _prepared  # noqa: PLW0603  # one per process, taken by the first client that needs it
    with _lock:
        if _prepared is not None:
            return
        building = _prepared = _Building(_source())
    threading.Thread(target=building.run, name="lockd-tls-context", daemon=True).start()


def tls_context() -> ssl.SSLContext:
    """A new context to verify https connections with: the prepared one if there is one for this environment.

    An error (a CA file that cannot be read) is raised here, by building it again, so the caller
    meets it where it would have without `prepare_tls_context`.
    """
    global _prepared
    source = _source()
    with _lock:
        building, _prepared = _prepared, None
    if building is not None and building.source == source:
        context = building.take()
        if context is not None:
            return context
    return _build(source)
