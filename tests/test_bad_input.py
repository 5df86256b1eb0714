"""Bad input over HTTP: every kind is refused with problem+json, a precise code, and no row written.

Each case is sent to `POST /lock` (raw body) and, where the kind makes sense as JSON, to
`POST /v1/locks`, against a live server on SQLite and on PostgreSQL. Rows are counted in every
store table before and after: a refused input must not leave a lock, a revision, an input or a
lock file behind. Resolution failures may leave their failed single-flight lease (that row is
how waiters learn the error) and cached metadata, never lock data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import PROBLEM, LockdServer, assert_problem, row_counts

LINUX = {"platform": "linux_x86_64", "python": "3.11"}
# Rows that a failed *resolution* may legitimately write: its failed lease (read by waiters of the
# same digest) and metadata cached by file hash. Intake failures must not write even these.
RESOLUTION_BOOKKEEPING = frozenset({"resolution_leases", "dist_metadata", "file_hashes"})


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int
    code: str
    line: int | None = None  # the problem names this requirements line
    resolves: bool = False  # fails during resolution (may leave bookkeeping rows), not at intake
    query: tuple[tuple[str, str], ...] = (("platform", "linux_x86_64"), ("python", "3.11"))


def _target(**cuda: str) -> tuple[tuple[str, str], ...]:
    return tuple({"platform": "linux_x86_64", "python": "3.11", **cuda}.items())


def _nested_marker(depth: int) -> bytes:
    """A valid marker nesting `depth` levels that packaging cannot flatten (and/or alternate)."""
    marker = 'os_name=="posix"'
    for level in range(depth):
        marker = f'os_name=="posix" {"and" if level % 2 else "or"} ({marker})'
    return marker.encode()


RAW_CASES = [
    Case("malformed", b"numpy\n# fine\nrequests >= = 2\n", 422, "invalid-requirement", line=3),
    Case("malformed-continuation", b"numpy \\\n  >=1\nfoo[bar\n", 422, "invalid-requirement", line=3),
    Case("include-r", b"numpy\n-r other.in\n", 422, "unsupported-requirement", line=2),
    Case("include-long", b"--requirement=base.in\n", 422, "unsupported-requirement", line=1),
    Case("constraints-c", b"numpy\n\n-c constraints.txt\n", 422, "unsupported-requirement", line=3),
    Case("editable", b"-e .\n", 422, "unsupported-requirement", line=1),
    Case(
        "editable-vcs",
        b"numpy\n-e git+https://example.invalid/x.git#egg=x\n",
        422,
        "unsupported-requirement",
        line=2,
    ),
    Case("url", b"https://example.invalid/x-1.0-py3-none-any.whl\n", 422, "unsupported-requirement", line=1),
    Case(
        "pep508-url",
        b"numpy\nx @ https://example.invalid/x-1.0.tar.gz\n",
        422,
        "unsupported-requirement",
        line=2,
    ),
    Case("local-path", b"./vendor/x-1.0-py3-none-any.whl\n", 422, "unsupported-requirement", line=1),
    Case("local-dir", b"numpy\n../sibling\n", 422, "unsupported-requirement", line=2),
    Case("vcs", b"git+https://example.invalid/x.git@v1#egg=x\n", 422, "unsupported-requirement", line=1),
    Case(
        "index-url",
        b"--index-url https://evil.invalid/simple\nnumpy\n",
        422,
        "unsupported-requirement",
        line=1,
    ),
    Case(
        "extra-index-url",
        b"numpy\n--extra-index-url=https://evil.invalid/simple\n",
        422,
        "unsupported-requirement",
        line=2,
    ),
    Case("find-links", b"-f https://evil.invalid/links\nnumpy\n", 422, "unsupported-requirement", line=1),
    Case("trusted-host", b"--trusted-host evil.invalid\n", 422, "unsupported-requirement", line=1),
    Case("nul", b"numpy\nreq\x00uests\n", 422, "invalid-requirement", line=2),
    Case("non-utf8", b"numpy\nr\xe9quests\n", 400, "invalid-request"),
    Case("utf16", "numpy\n".encode("utf-16"), 400, "invalid-request"),
    Case("empty", b"# only a comment\n\n", 400, "invalid-request"),
    Case("too-many", b"".join(f"p{i}\n".encode() for i in range(10_000)), 413, "input-too-large"),
    Case("enormous-line", b"numpy\n" + b"a" * 900_000 + b"\n", 413, "input-too-large", line=2),
    Case("enormous-invalid-line", b"numpy>=" + b"1" * 900_000 + b"!!\n", 413, "input-too-large", line=1),
    Case("long-invalid-line", b"numpy\nnumpy>=" + b"1" * 9_000 + b"!!\n", 422, "invalid-requirement", line=2),
    # packaging parses and prints markers recursively: thousands of parentheses overflowed the stack
    # while parsing, a few hundred while printing the canonical form (both were a 500).
    Case(
        "deep-marker", b"numpy\nlockd-fx-plain ; " + b"(" * 3_000 + b"\n", 422, "invalid-requirement", line=2
    ),
    Case(
        "deep-marker-valid-syntax",
        b"lockd-fx-plain ; " + _nested_marker(420) + b"\n",
        422,
        "invalid-requirement",
        line=1,
    ),
    Case("unknown-project", b"lockd-fx-no-such-project\n", 422, "unknown-project", resolves=True),
    Case("unsatisfiable", b"lockd-fx-plain>=99\n", 422, "no-matching-distribution", resolves=True),
    Case(
        "conflict", b"lockd-fx-conflict-a\nlockd-fx-conflict-c\n", 422, "resolution-impossible", resolves=True
    ),
    Case("no-wheel-for-target", b"lockd-fx-winonly\n", 422, "no-matching-distribution", resolves=True),
    Case("sdist-needs-build", b"lockd-fx-sdist-dynamic\n", 422, "sdist-needs-build", resolves=True),
    Case(
        "cuda-on-macos",
        b"numpy\n",
        422,
        "invalid-target",
        query=(("platform", "macos_arm64"), ("python", "3.11"), ("cuda", "cu124")),
    ),
    Case("unknown-variant", b"numpy\n", 422, "invalid-target", query=_target(cuda="cu999")),
    Case(
        "unknown-platform",
        b"numpy\n",
        422,
        "invalid-target",
        query=(("platform", "solaris_sparc"), ("python", "3.11")),
    ),
    Case(
        "unknown-python",
        b"numpy\n",
        422,
        "invalid-target",
        query=(("platform", "linux_x86_64"), ("python", "2.7")),
    ),
    Case("no-platform", b"numpy\n", 422, "invalid-target", query=(("python", "3.11"),)),
]


@pytest.fixture
def counted(lockd_server: LockdServer) -> dict[str, int]:
    """Row counts before the test; the test compares after."""
    return row_counts(lockd_server.database_url)


def assert_no_rows(before: dict[str, int], after: dict[str, int], *, resolves: bool) -> None:
    ignored = RESOLUTION_BOOKKEEPING if resolves else frozenset()
    changed = {
        name: (before[name], after[name])
        for name in before
        if before[name] != after[name] and name not in ignored
    }
    assert not changed, f"rows written by a refused request: {changed}"


@pytest.mark.parametrize("case", RAW_CASES, ids=lambda c: c.id)
def test_raw_body_refused_with_code_and_nothing_stored(
    lockd_server: LockdServer, counted: dict[str, int], case: Case
) -> None:
    with lockd_server.client("lock") as client:
        response = client.post(
            "/lock", params=dict(case.query), content=case.body, headers={"content-type": "text/plain"}
        )
    body = assert_problem(response, case.status, case.code)
    if case.line is not None:
        assert body["context"]["line"] == case.line, body
        assert f"line {case.line}" in body["detail"]
    assert len(response.content) < 20_000, "a problem must not echo an enormous input back"
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=case.resolves)


JSON_CASES = [c for c in RAW_CASES if c.id not in {"non-utf8", "utf16", "too-many"}]


@pytest.mark.parametrize("case", JSON_CASES, ids=lambda c: c.id)
def test_json_body_refused_with_code_and_nothing_stored(
    lockd_server: LockdServer, counted: dict[str, int], case: Case
) -> None:
    target: dict[str, Any] = dict(case.query)
    target.setdefault("platform", "")
    target.setdefault("python", "3.11")
    payload = {"requirements": case.body.decode("utf-8"), "target": target}
    with lockd_server.client("lock") as client:
        response = client.post("/v1/locks", json=payload)
    if case.id == "no-platform":
        body = assert_problem(response, 422, "invalid-target")
    else:
        body = assert_problem(response, case.status, case.code)
    if case.line is not None:
        assert body["context"]["line"] == case.line, body
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=case.resolves)


def test_json_list_of_lines_counts_lines_from_one(lockd_server: LockdServer, counted: dict[str, int]) -> None:
    payload = {"requirements": ["numpy", "-r x.in"], "target": LINUX}
    with lockd_server.client("lock") as client:
        body = assert_problem(client.post("/v1/locks", json=payload), 422, "unsupported-requirement")
    assert body["context"]["line"] == 2
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_json_list_item_holding_several_lines_is_refused(
    lockd_server: LockdServer, counted: dict[str, int]
) -> None:
    # Joined as is, the item would become two requirements and shift every later line number.
    payload = {"requirements": ["numpy", "lockd-fx-plain\nlockd-fx-extras", "-r x.in"], "target": LINUX}
    with lockd_server.client("lock") as client:
        body = assert_problem(client.post("/v1/locks", json=payload), 422, "invalid-requirement")
        assert body["context"]["line"] == 2
        assert "line 2" in body["detail"]
        # A trailing newline is still one line.
        constraints = {"requirements": "numpy", "constraints": ["numpy<3\n", "-c x.txt"], "target": LINUX}
        body = assert_problem(client.post("/v1/locks", json=constraints), 422, "unsupported-requirement")
        assert body["context"] == {"line": 2, "text": "-c x.txt", "source": "constraints.txt"}
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_a_long_run_of_whitespace_does_not_stall_the_server(
    lockd_server: LockdServer, counted: dict[str, int]
) -> None:
    # pip's comment regex `(^|\s+)#.*$` backtracks quadratically on whitespace not followed by `#`:
    # 100 kB of spaces took about 35 s of CPU under the GIL, so /healthz waited too, and a 1 MB
    # line would have held the whole server for an hour. Intake must read it in linear time.
    spaces = b" " * 100_000
    with lockd_server.client("lock", timeout=10) as client:
        started = time.monotonic()
        response = client.post(
            "/lock",
            params=LINUX,
            content=b"numpy\n" + spaces + b"\n!!" + spaces + b"x\n",
            headers={"content-type": "text/plain"},
        )
        problem = assert_problem(response, 413, "input-too-large")
        assert problem["context"]["line"] == 3
        payload = {"requirements": "numpy\n" + " " * 100_000 + "\n!! x", "target": LINUX}
        problem = assert_problem(client.post("/v1/locks", json=payload), 422, "invalid-requirement")
        assert problem["context"]["line"] == 3
        assert time.monotonic() - started < 5
        assert client.get("/healthz").status_code == 200
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_json_constraints_are_checked_like_requirements(
    lockd_server: LockdServer, counted: dict[str, int]
) -> None:
    payload = {
        "requirements": "numpy",
        "constraints": "numpy<2\n--index-url https://evil.invalid/\n",
        "target": LINUX,
    }
    with lockd_server.client("lock") as client:
        body = assert_problem(client.post("/v1/locks", json=payload), 422, "unsupported-requirement")
    assert body["context"]["line"] == 2
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/lock", "application/json"),
        ("/lock", "multipart/form-data; boundary=x"),
        ("/lock", "image/png"),
        ("/v1/locks", "text/plain"),
        ("/v1/locks", "application/xml"),
        ("/v1/locks", "application/x-www-form-urlencoded"),  # what `curl -d @lock.json` sends
        ("/v1/locks", None),  # FastAPI reads a body without a content type as bytes, never as JSON
    ],
)
def test_wrong_content_type(
    lockd_server: LockdServer, counted: dict[str, int], path: str, content_type: str | None
) -> None:
    body = b'{"requirements": "numpy", "target": {"platform": "linux_x86_64", "python": "3.11"}}'
    headers = {} if content_type is None else {"content-type": content_type}
    with lockd_server.client("lock") as client:
        # /v1/locks takes its target in the body: query parameters there are unknown (a 422 of
        # their own since issue 14), so only /lock gets them
        params = LINUX if path == "/lock" else None
        response = client.post(path, params=params, content=body, headers=headers)
    assert "content-type" in response.request.headers or content_type is None
    problem = assert_problem(response, 415, "unsupported-media-type")
    assert problem["hint"]
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


@pytest.mark.parametrize("path", ["/lock", "/v1/locks"])
def test_ten_megabyte_body_is_413_and_cut_off(
    lockd_server: LockdServer, counted: dict[str, int], path: str
) -> None:
    body = b"numpy\n" * (10 * 1024 * 1024 // 6)
    content_type = "text/plain" if path == "/lock" else "application/json"
    with lockd_server.client("lock") as client:
        response = client.post(path, params=LINUX, content=body, headers={"content-type": content_type})
    assert_problem(response, 413, "input-too-large")
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_chunked_body_without_length_is_still_cut_off(
    lockd_server: LockdServer, counted: dict[str, int]
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b"numpy\n" * 10_000  # 12 MB in all, no Content-Length

    with lockd_server.client("lock") as client:
        response = client.post(
            "/lock", params=LINUX, content=chunks(), headers={"content-type": "text/plain"}
        )
    assert_problem(response, 413, "input-too-large")
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


_TARGET_JSON = b'"target": {"platform": "linux_x86_64", "python": "3.11"}'


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "invalid-json"),
        (b'["a list"]', 422, "invalid-request"),
        (b'{"requirements": "numpy"}', 422, "invalid-request"),
        (b'{"requirements": 5, ' + _TARGET_JSON + b"}", 422, "invalid-request"),
        (
            b'{"requirements": "numpy", ' + _TARGET_JSON + b', "index_url": "http://x"}',
            422,
            "invalid-request",
        ),
        (
            b'{"requirements": "numpy", "target": {"platform": "linux_x86_64", "python": "3.11", "os": "linux"}}',
            422,
            "invalid-request",
        ),
        (
            b'{"requirements": "numpy", ' + _TARGET_JSON + b', "options": {"as_of": "yesterday"}}',
            422,
            "invalid-request",
        ),
        # An aware time that has no UTC equivalent (year 1 at +14:00) used to be a 500.
        (
            b'{"requirements": "numpy", '
            + _TARGET_JSON
            + b', "options": {"as_of": "0001-01-01T00:00:00+14:00"}}',
            400,
            "invalid-request",
        ),
        (b"\xff\xfe{}", 400, "invalid-json"),
        # Not UTF-8 inside the JSON, and nesting past the parser's recursion limit: FastAPI wraps
        # both in a bare 400 "There was an error parsing the body"; they are bad JSON like the rest.
        (b'{"requirements": "r\xe9quests", ' + _TARGET_JSON + b"}", 400, "invalid-json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid-json"),
    ],
    ids=[
        "truncated",
        "list",
        "no-target",
        "int-requirements",
        "extra-field",
        "extra-target-field",
        "bad-as-of",
        "as-of-out-of-range",
        "bad-bytes",
        "latin-1-inside",
        "nested-too-deep",
    ],
)
def test_malformed_json_bodies(
    lockd_server: LockdServer, counted: dict[str, int], payload: bytes, status: int, code: str
) -> None:
    with lockd_server.client("lock") as client:
        response = client.post("/v1/locks", content=payload, headers={"content-type": "application/json"})
    body = assert_problem(response, status, code)
    assert body["detail"]
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_bad_query_parameters(lockd_server: LockdServer, counted: dict[str, int]) -> None:
    with lockd_server.client("lock") as client:
        response = client.post(
            "/lock",
            params={**LINUX, "pre": "perhaps"},
            content=b"numpy\n",
            headers={"content-type": "text/plain"},
        )
        assert_problem(response, 422, "invalid-request")
        response = client.post(
            "/lock",
            params={**LINUX, "format": "setup.py"},
            content=b"numpy\n",
            headers={"content-type": "text/plain"},
        )
        assert 400 <= response.status_code < 500 and response.headers["content-type"].startswith(PROBLEM), (
            response.text
        )
    assert_no_rows(counted, row_counts(lockd_server.database_url), resolves=False)


def test_server_still_locks_after_all_that(lockd_server: LockdServer, unique_requirements: str) -> None:
    before = row_counts(lockd_server.database_url)
    with lockd_server.client("lock") as client:
        response = client.post(
            "/lock", params=LINUX, content=unique_requirements, headers={"content-type": "text/plain"}
        )
    assert response.status_code == 201, response.text
    after = row_counts(lockd_server.database_url)
    assert after["revisions"] == before["revisions"] + 1
    assert after["inputs"] == before["inputs"] + 1
