"""Every error class over HTTP is RFC 9457 problem+json with a stable code, and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fixtures.served_index import ControlledIndex
from lockd.service import Service
from tests.support import LockdServer, PostgresDatabases, StartLockd

TARGET = "python=3.11&platform=linux_x86_64"


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"urn:lockd:problem:{code}"
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == response.request.url.path
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


def _stored_inputs(server: LockdServer) -> int:
    service = Service.open(server.settings())
    try:
        return len(service.list_locks(limit=10_000))
    finally:
        service.close()


@pytest.mark.parametrize(
    ("body", "query", "status", "code", "context"),
    [
        ("requests\n!!not a requirement\n", TARGET, 422, "invalid-requirement", {"line": 2}),
        ("-e ./src\n", TARGET, 422, "unsupported-requirement", {"line": 1}),
        ("git+https://example.com/x.git\n", TARGET, 422, "unsupported-requirement", {"line": 1}),
        ("numpy\n", "python=3.11&platform=macos_arm64&cuda=cu124", 422, "invalid-target", {"field": "cuda"}),
        ("numpy\n", "python=3.11&platform=sparc", 422, "invalid-target", {"field": "platform"}),
        ("numpy\n", "python=2.7&platform=linux_x86_64", 422, "invalid-target", {"field": "python"}),
        ("numpy\n", TARGET + "&cuda=cu999", 422, "invalid-target", {"field": "cuda"}),
        ("lockd-fx-no-such-project\n", TARGET, 422, "unknown-project", {}),
        ("lockd-fx-plain>=99\n", TARGET, 422, "no-matching-distribution", {}),
        ("lockd-fx-conflict-a\nlockd-fx-conflict-b>=2\n", TARGET, 422, "resolution-impossible", {}),
        ("lockd-fx-sdist-dynamic\n", TARGET, 422, "sdist-needs-build", {}),
        ("numpy\n", TARGET + "&format=setup.py", 400, "invalid-request", {"field": "format"}),
        ("", TARGET, 400, "invalid-request", {}),
    ],
)
def test_lock_errors_are_problems(  # noqa: PLR0917 (pytest passes parameters positionally)
    lockd_server: LockdServer, body: str, query: str, status: int, code: str, context: dict[str, Any]
) -> None:
    before = _stored_inputs(lockd_server)
    with lockd_server.client() as client:
        problem = _assert_problem(client.post(f"/lock?{query}", content=body), status, code)
    for key, value in context.items():
        assert problem["context"][key] == value
    if code == "resolution-impossible":
        assert "lockd-fx-conflict-b" in problem["detail"] + str(problem.get("context"))
    assert _stored_inputs(lockd_server) == before


def test_request_format_errors(lockd_server: LockdServer) -> None:
    with lockd_server.client() as client:
        _assert_problem(client.post(f"/lock?{TARGET}", content=b"numpy\n\xff\xfe"), 400, "invalid-request")
        _assert_problem(client.post(f"/lock?{TARGET}", content=b"numpy\x00\n"), 422, "invalid-requirement")
        _assert_problem(
            client.post(f"/lock?{TARGET}", content=b"{}", headers={"Content-Type": "application/json"}),
            415,
            "unsupported-media-type",
        )
        _assert_problem(
            client.post("/v1/locks", content=b"numpy", headers={"Content-Type": "text/plain"}),
            415,
            "unsupported-media-type",
        )
        _assert_problem(
            client.post(
                "/v1/locks", content=b'{"requirements": ', headers={"Content-Type": "application/json"}
            ),
            400,
            "invalid-json",
        )
        missing = _assert_problem(
            client.post("/v1/locks", json={"requirements": "numpy"}), 422, "invalid-request"
        )
        assert missing["context"]["errors"][0]["loc"] == ["body", "target"]
        _assert_problem(
            client.post("/v1/locks", json={"requirements": "numpy", "target": {"platform": "linux_x86_64"}}),
            422,
            "invalid-request",
        )
        _assert_problem(client.get("/no/such/route"), 404, "not-found")
        _assert_problem(client.get("/v1/locks/" + "a" * 64), 404, "not-found")
        _assert_problem(client.get("/v1/blobs/" + "a" * 64 + "/requirements.txt"), 404, "not-found")
        _assert_problem(client.get("/v1/locks/not-a-digest"), 422, "invalid-request")
        _assert_problem(client.get("/v1/blobs/" + "a" * 64 + "/setup.py"), 404, "not-found")
        _assert_problem(client.delete("/v1/locks"), 405, "method-not-allowed")
        wrong_method = client.get("/v1/locks/" + "a" * 64 + "/refresh")
        _assert_problem(wrong_method, 405, "method-not-allowed")
        assert wrong_method.headers["allow"] == "POST"
        _assert_problem(client.get("/v1/locks", params={"limit": 0}), 422, "invalid-request")


def test_body_limits(lockd_server: LockdServer) -> None:
    big = b"numpy\n" + b"# padding\n" * 120_000  # 1.2 MB, over the 1 MiB default
    with lockd_server.client() as client:
        _assert_problem(client.post(f"/lock?{TARGET}", content=big), 413, "input-too-large")

        # No Content-Length to trust: the limit holds while the chunked body is read.
        def chunks() -> Iterator[bytes]:
            for _ in range(120):
                yield b"# padding\n" * 1000

        _assert_problem(client.post(f"/lock?{TARGET}", content=chunks()), 413, "input-too-large")
        many = "".join(f"lockd-fx-plain!=0.0.{n}\n" for n in range(501))
        problem = _assert_problem(client.post(f"/lock?{TARGET}", content=many), 413, "input-too-large")
        assert problem["context"]["limit"] == 500
        # The server is still fine afterwards.
        assert client.get("/healthz").status_code == 200


def test_token_scopes(lockd_server: LockdServer, unique_requirements: str) -> None:
    url = f"/lock?{TARGET}"
    with lockd_server.client(None) as anonymous:
        problem = _assert_problem(anonymous.post(url, content=unique_requirements), 401, "unauthorized")
        assert "lockd token create" in problem["hint"]
        response = anonymous.post(url, content=unique_requirements)
        assert response.headers["www-authenticate"].startswith("Bearer")
        _assert_problem(
            anonymous.post(url, content=unique_requirements, headers={"Authorization": "Bearer lockd_wrong"}),
            401,
            "unauthorized",
        )
        _assert_problem(
            anonymous.post(url, content=unique_requirements, headers={"Authorization": "Basic dXNlcjpwYXNz"}),
            401,
            "unauthorized",
        )
        # Reads are anonymous by default.
        assert anonymous.get("/v1/locks").status_code == 200
    with lockd_server.client("read") as reader:
        _assert_problem(reader.post(url, content=unique_requirements), 403, "forbidden")
        _assert_problem(reader.post("/v1/locks/" + "a" * 64 + "/refresh"), 403, "forbidden")
        assert reader.get("/v1/locks").status_code == 200
    with lockd_server.client("lock") as locker:
        created = locker.post(url, content=unique_requirements)
        assert created.status_code == 201
    with lockd_server.client("admin") as admin:
        assert admin.post(url, content=unique_requirements).status_code == 200
        assert admin.post(f"/v1/locks/{created.headers['input-digest']}/refresh").status_code == 200


def test_reads_need_a_token_when_anonymous_read_is_off(
    start_lockd: StartLockd, database_url: str, unique_requirements: str
) -> None:
    server = start_lockd(database_url, LOCKD_ANONYMOUS_READ="false")
    with server.client(None) as anonymous:
        _assert_problem(anonymous.get("/v1/locks"), 401, "unauthorized")
        assert anonymous.get("/healthz").status_code == 200
    with server.client("read") as reader:
        assert reader.get("/v1/locks").status_code == 200


def test_resolution_timeout_is_504_and_stores_nothing(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    # Every page takes 3 s, twice the budget; the retry gets the same budget with no latency, wide
    # enough for a loaded CI machine.
    mutable_index.set_latency(3000)
    server = start_lockd(database_url, index=mutable_index, LOCKD_RESOLVE_TIMEOUT="1.5")
    with server.client() as client:
        problem = _assert_problem(
            client.post(f"/lock?{TARGET}", content=unique_requirements), 504, "resolution-timeout"
        )
        assert problem["status"] == 504
        assert client.get("/v1/locks").json()["items"] == []
    assert _stored_inputs(server) == 0
    mutable_index.set_latency(0)
    with server.client() as client:
        # The failed attempt leaves nothing that blocks a retry: its page fetch ended at its
        # deadline, and its failed lease does not answer a newcomer (a 504 may be transient).
        retry = client.post(f"/lock?{TARGET}", content=unique_requirements)
        assert retry.status_code == 201, retry.text


def test_index_failure_is_502(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    mutable_index.set_fault("500")
    server = start_lockd(database_url, index=mutable_index)
    with server.client() as client:
        _assert_problem(client.post(f"/lock?{TARGET}", content=unique_requirements), 502, "index-unavailable")
    assert _stored_inputs(server) == 0


def test_database_unavailable_is_503(start_lockd: StartLockd, postgres_databases: PostgresDatabases) -> None:
    missing = postgres_databases.admin_url.rsplit("/", 1)[0] + "/lockd_no_such_database"
    server = start_lockd(missing, tokens=False)
    with httpx.Client(base_url=server.url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] is False
        _assert_problem(client.get("/v1/locks"), 503, "store-unavailable")
