"""Host names → addresses, asked of the system resolver once a minute per host, not once per connection.

A resolution opens up to 64 connections at once, and a server reopens them after they sat idle.
Each opening called `getaddrinfo`, which blocks outside any deadline, and on a resolver that
drops one of the parallel A/AAAA answers it takes the resolver's 5 s retry: measured here, every
warm `POST /lock` after an idle pause took 5.3 s instead of 0.6 s (py-spy: all fetch threads in
`getaddrinfo`). Answers are kept `ttl` seconds; a failed lookup is never kept. Addresses are
literals, so TLS still verifies and sends SNI for the host name (`http11` passes it separately).

A lookup runs on its own daemon thread and the caller waits at most `timeout` (the connect
timeout, clamped to the work's deadline): `getaddrinfo` cannot be interrupted, so a slow system
resolver would otherwise hold a resolution past its deadline. The answer, when it comes, is kept
for the next caller.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["HostAddresses", "LookupTimeout"]

Lookup = Callable[[str, int], list[str]]


def _system_lookup(host: str, port: int) -> list[str]:
    # As bytes: a str host is IDNA-encoded by `socket`, which imports the codec (8 ms); the URL's
    # host is ASCII already (`lockd.index.urls`).
    answers = socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in answers))


class LookupTimeout(TimeoutError):
    """The system resolver did not answer within the caller's time; the lookup goes on without it."""


class _Asking:
    """One lookup in flight, which every caller for the same host waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.found: list[str] = []
        self.error: OSError | None = None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostAddresses:
    """The addresses of each (host, port), in the resolver's order, for `ttl` seconds. Thread-safe."""

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        lookup: Lookup = _system_lookup,
        clock: Callable[[], float] = time.monotonic,
        max_hosts: int = 1024,
    ) -> None:
        self._ttl = ttl
        self._lookup = lookup
        self._clock = clock
        self._max_hosts = max_hosts
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], tuple[float, list[str]]] = {}
        # One lookup per host at a time: 64 threads opening connections at once ask once.
        self._asking: dict[tuple[str, int], _Asking] = {}

    def addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """`host` itself when it is an address literal, else its addresses.

        Raises `socket.gaierror` if it has none, the lookup's own `OSError` if it failed, and
        `LookupTimeout` when no answer came within `timeout` seconds (None: wait as long as it takes).
        """
        if _is_literal(host):
            return [host]
        key = (host.lower(), port)
        with self._lock:
            known = self._fresh(key)
            if known is not None:
                return known
            asking = self._asking.get(key)
            if asking is None:
                asking = self._asking[key] = _Asking()
                threading.Thread(
                    target=self._ask, args=(key, asking), name=f"lockd-lookup-{key[0]}", daemon=True
                ).start()
        if not asking.done.wait(timeout):
            raise LookupTimeout(f"no answer for {host} within {timeout:.1f} s")
        error = asking.error
        if error is not None:
            # A fresh exception per waiter: threads raising one object would share its traceback.
            raise type(error)(*error.args) from None
        return asking.found

    def _ask(self, key: tuple[str, int], asking: _Asking) -> None:
        try:
            found = self._lookup(*key)
            if not found:
                raise socket.gaierror(f"no addresses for {key[0]}")
        except OSError as exc:  # socket.gaierror, or the resolver's own failure: never kept
            asking.error = exc
        else:
            asking.found = found
            with self._lock:
                if len(self._known) >= self._max_hosts:
                    self._known.clear()
                self._known[key] = (self._clock() + self._ttl, found)
        finally:
            with self._lock:
                self._asking.pop(key, None)
            asking.done.set()

    def _fresh(self, key: tuple[str, int]) -> list[str] | None:
        entry = self._known.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]
