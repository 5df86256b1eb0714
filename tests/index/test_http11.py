"""`lockd.index.http11`: HTTP/1.1 framing, keep-alive and hostile answers, against a scripted loopback server.

Each answer below is the exact bytes a server sends, so framing that a friendly server never
produces (two lengths, a chunk size that is no number, a head with no end) is tested too.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockd.errors import IndexUnavailable
from lockd.index.fetcher import Fetcher
from lockd.index.http11 import Connection
from lockd.index.http11_body import MAX_HEAD
from lockd.index.network import index_connections
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.index.wire import LocalProtocolError, RemoteProtocolError, Request, TransportError
from tests.support import fetched, slots_get, slots_read


@dataclass
class _Script:
    """Answers, one per request in arrival order; after those in `close_after` the server hangs up.

    An answer of None: the server hangs up on that request without answering it.
    """

    answers: list[bytes | None]
    close_after: set[int] = field(default_factory=set)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def _scripted(script: _Script) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        conn.settimeout(10)
        with conn, suppress(OSError):  # the client hung up
            answer(conn)

    def answer(conn: socket.socket) -> None:
        pending = b""
        while not stop.is_set():
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            head, pending = pending.split(b"\r\n\r\n", 1)
            index = len(script.requests)
            script.requests.append(head)
            answer = script.answers[index]
            if answer is None:
                return
            conn.sendall(answer)
            if index in script.close_after:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            script.connections += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        listener.close()


def _ok(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


@contextmanager
def _fetcher() -> Iterator[Fetcher]:
    fetcher = Fetcher(ClientOptions(timeout=5.0, max_connections=4), FetchCounters())
    try:
        yield fetcher
    finally:
        fetcher.close()


def test_a_sized_answer_is_read_and_its_connection_reused() -> None:
    script = _Script([_ok(b"first"), _ok(b"second", b"X-Any: 1\r\n")])
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url + "a")[2] == b"first"
        assert fetched(fetcher, url + "b")[2] == b"second"
    assert script.connections == 1
    assert script.requests[0].startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:")


def test_a_chunked_answer_is_joined_and_its_connection_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    script = _Script([chunked, _ok(b"next")])
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[2] == b"hello 0123456789"
        assert fetched(fetcher, url)[2] == b"next"
    assert script.connections == 1


def test_an_answer_without_length_runs_to_the_end_of_its_connection() -> None:
    script = _Script([b"HTTP/1.1 200 OK\r\n\r\nall of it", _ok(b"again")], close_after={0})
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[2] == b"all of it"
        assert fetched(fetcher, url)[2] == b"again"
    assert script.connections == 2


@pytest.mark.parametrize(
    "extra",
    [b"Connection: close\r\n", b"Connection: keep-alive, Close\r\n"],
)
def test_connection_close_is_honoured(extra: bytes) -> None:
    script = _Script([_ok(b"one", extra), _ok(b"two")], close_after={0})
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[2] == b"one"
        assert fetched(fetcher, url)[2] == b"two"
    assert script.connections == 2


def test_a_kept_alive_connection_the_server_closed_unseen_is_replaced() -> None:
    # The server hangs up after the first answer without saying so: the client sees the socket
    # readable (its end) and opens a new connection for the second request.
    script = _Script([_ok(b"one"), _ok(b"two")], close_after={0})
    with _scripted(script) as url, index_connections(max_connections=2) as slots:
        assert slots_read(slots, url) == b"one"
        assert slots_read(slots, url) == b"two"
    assert script.connections == 2


def test_a_request_a_kept_alive_connection_drops_unanswered_is_sent_again_once() -> None:
    # The server closes the kept-alive connection as the second request arrives (its idle
    # timeout racing the request): nothing of an answer came, so the GET goes again on a new one.
    script = _Script([_ok(b"one"), None, _ok(b"two")])
    with _scripted(script) as url, index_connections(max_connections=2) as slots:
        assert slots_read(slots, url) == b"one"
        assert slots_read(slots, url) == b"two"
    assert script.connections == 2
    assert len(script.requests) == 3


def test_a_new_connection_that_drops_a_request_unanswered_is_an_error() -> None:
    script = _Script([None, _ok(b"never")])
    with _scripted(script) as url, index_connections(max_connections=2) as slots:
        with pytest.raises(RemoteProtocolError, match="without sending a response"):
            slots_read(slots, url)
    assert len(script.requests) == 1


def test_interim_answers_are_skipped() -> None:
    script = _Script(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + _ok(b"real")]
    )
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[:3:2] == (200, b"real")


def test_answers_without_a_body() -> None:
    script = _Script(
        [
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            _ok(b"x"),
        ]
    )
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[::2] == (204, b"")
        assert fetched(fetcher, url)[::2] == (304, b"")
        assert fetched(fetcher, url)[2] == b"x"
    assert script.connections == 1


def test_bare_line_feeds_and_folded_fields_are_read() -> None:
    script = _Script([b"HTTP/1.1 200 OK\nContent-Type: text/html;\n  charset=utf-8\nContent-Length: 2\n\nok"])
    with _scripted(script) as url, _fetcher() as fetcher, fetcher.request("GET", url) as answer:
        assert answer.headers.get("content-type") == "text/html; charset=utf-8"
        assert b"".join(answer.iter_raw()) == b"ok"


def test_bytes_past_the_framed_body_end_the_connection() -> None:
    # The server keeps the connection: only the client can tell the stray bytes make it unusable.
    script = _Script([_ok(b"one") + b"HTTP/1.1 200 OK\r\n", _ok(b"two")])
    with _scripted(script) as url, _fetcher() as fetcher:
        assert fetched(fetcher, url)[2] == b"one"
        assert fetched(fetcher, url)[2] == b"two"  # not the stray bytes: a new connection
    assert script.connections == 2


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nx", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nx", "bad Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
            "two different Content-Lengths",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "without sending complete message body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz", "unsupported Transfer-Encoding"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "unsupported Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n",
            "did not end where its size said",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, "chunk size line longer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "complete message body"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "illegal header line"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n", "illegal value"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "switched protocols"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "without sending a response"),
        (b"", "without sending a response"),
    ],
)
def test_a_hostile_answer_is_refused_by_name(answer: bytes, why: str) -> None:
    script = _Script([answer, _ok(b"fine")], close_after={0})
    with _scripted(script) as url, _fetcher() as fetcher:
        with pytest.raises(IndexUnavailable, match=f"cannot reach {url}.*{why}"):
            fetched(fetcher, url)
        assert fetched(fetcher, url)[2] == b"fine"  # the client goes on, on a new connection


def test_a_head_that_never_ends_is_cut_off_at_its_bound() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * (4 * MAX_HEAD)
    script = _Script([endless])
    with _scripted(script) as url, index_connections(max_connections=1) as slots:
        with pytest.raises(RemoteProtocolError, match="head is over 64 KiB"):
            slots_read(slots, url)


def test_a_line_break_in_a_header_is_never_sent() -> None:
    script = _Script([_ok(b"x")])
    with _scripted(script) as url, index_connections(max_connections=1) as slots:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        request = Request(
            method=b"GET",
            scheme=b"http",
            host=b"127.0.0.1",
            port=port,
            target=b"/",
            headers=[(b"Host", b"127.0.0.1"), (b"X-Evil", b"a\r\nInjected: yes")],
            timeouts={},
        )
        with pytest.raises(LocalProtocolError):
            slots.handle_request(request)
    assert script.requests == []


def test_a_body_left_unread_closes_its_connection() -> None:
    script = _Script([_ok(b"x" * 200_000), _ok(b"y")], close_after={0})
    with _scripted(script) as url, index_connections(max_connections=1) as slots:
        response = slots_get(slots, url, {"read": 5.0})
        next(iter(response.stream))
        response.close()
        assert slots_read(slots, url) == b"y"
    assert script.connections == 2


def test_an_unreachable_port_is_a_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with _fetcher() as fetcher, pytest.raises(IndexUnavailable, match=r"cannot reach .*refused"):
        fetched(fetcher, f"http://127.0.0.1:{port}/")


def test_a_head_answer_has_no_body_whatever_its_length_says() -> None:
    # Drift asks for files with HEAD: the Content-Length is the file's, and no body follows.
    script = _Script([b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", _ok(b"after")])
    with _scripted(script) as url, _fetcher() as fetcher:
        with fetcher.request("HEAD", url) as answer:
            assert answer.status_code == 200
            assert answer.headers.get("content-length") == "1000"
            assert b"".join(answer.iter_raw()) == b""
        assert fetched(fetcher, url)[2] == b"after"
    assert script.connections == 1
    assert script.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")


class _Bytes:
    """A socket stream over bytes given in advance, read in pieces of at most `piece` bytes."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece, self.sent = data, piece, b""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        taken, self.data = self.data[: min(max_bytes, self.piece)], self.data[min(max_bytes, self.piece) :]
        return taken

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer

    def is_readable(self) -> bool:
        return bool(self.data)

    def close(self) -> None:
        pass


class _OneStream:
    def __init__(self, stream: _Bytes) -> None:
        self.stream = stream

    def connect_tcp(self, host: str, port: int, timeout: float | None = None) -> _Bytes:
        return self.stream

    def sleep(self, seconds: float) -> None:
        pass


_STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 200 OK\n",
        b"HTTP/1.1 204 No Content\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
    ]
)
_FIELDS = st.sampled_from(
    [
        b"Content-Length: 5\r\n",
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: 0x5\r\n",
        b"Content-Length: 99999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Connection: close\r\n",
        b" folded\r\n",
        b"X-A: b\r\n",
    ]
)
_BODY = st.sampled_from(
    [
        b"5\r\nhello\r\n",
        b"5;x=y\r\nhello\n",
        b"0\r\n\r\n",
        b"0\r\nT: 1\r\n\r\n",
        b"zz\r\n",
        b"-1\r\n",
        b"hello",
        b"\r\n",
    ]
)
_ANSWERS = st.builds(
    lambda status, fields, end, body: status + b"".join(fields) + end + b"".join(body),
    _STATUS_LINES,
    st.lists(st.one_of(_FIELDS, st.binary(max_size=12)), max_size=4),
    st.sampled_from([b"\r\n", b"\n", b""]),
    st.lists(st.one_of(_BODY, st.binary(max_size=24)), max_size=6),
)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(_ANSWERS, st.binary(max_size=200)),
    st.integers(min_value=1, max_value=64),
    st.sampled_from([b"GET", b"HEAD"]),
)
def test_any_bytes_an_index_sends_give_an_answer_or_a_transport_error(
    answer: bytes, piece: int, method: bytes
) -> None:
    connection = Connection(
        (b"http", b"index.example", 80),
        ssl_context=None,
        keepalive_expiry=5.0,
        retries=0,
        backend=_OneStream(_Bytes(answer, piece)),  # type: ignore[arg-type]
    )
    request = Request(
        method=method, scheme=b"http", host=b"index.example", port=80, target=b"/", headers=[], timeouts={}
    )
    try:
        response = connection.handle_request(request)
        body = response.read()
    except TransportError:
        assert connection.is_closed()
        return
    assert 200 <= response.status <= 999
    assert method == b"GET" or body == b""
    assert connection.is_idle() or connection.is_closed()


def test_a_connection_is_kept_alive_past_the_1024th_descriptor() -> None:
    # select() refuses a descriptor past 1024: a server holding many would judge every idle
    # connection spent and reopen one per request.
    import resource  # noqa: PLC0415

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [socket.socket() for _ in range(1030)]
    try:
        script = _Script([_ok(b"one"), _ok(b"two")])
        with _scripted(script) as url, _fetcher() as fetcher:
            assert fetched(fetcher, url)[2] == b"one"
            assert fetched(fetcher, url)[2] == b"two"
        assert script.connections == 1
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
