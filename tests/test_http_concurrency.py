"""Single-flight: identical concurrent requests resolve once, across threads and processes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fixtures.served_index import ControlledIndex
from lockd.service import Service
from tests.support import LockdServer, PostgresDatabases, StartLockd, metric_value

TARGET = "python=3.11&platform=linux_x86_64&cuda=cu124"


def _revisions(server: LockdServer, input_digest: str) -> int:
    service = Service.open(server.settings())
    try:
        return len(service.revisions(input_digest))
    finally:
        service.close()


def _post_many(urls: list[str], token: str, body: str) -> list[httpx.Response]:
    def post(url: str) -> httpx.Response:
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
            return client.post(f"{url}/lock?{TARGET}", content=body)

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(post, urls))


def _resolutions(server: LockdServer) -> float:
    return metric_value(httpx.get(server.url + "/metrics").text, "lockd_resolutions_total")


def test_fifty_identical_requests_resolve_once(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    # Slow enough that all 50 arrive while the first is still resolving.
    mutable_index.set_latency(150)
    server = start_lockd(database_url, index=mutable_index)
    body = "torch==2.5.1\n" + unique_requirements
    responses = _post_many([server.url] * 50, server.tokens["lock"], body)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201], [r.text for r in responses if r.status_code >= 300][:2]
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["lock-digest"] for r in responses}) == 1
    assert _resolutions(server) == 1
    assert _revisions(server, responses[0].headers["input-digest"]) == 1
    assert metric_value(httpx.get(server.url + "/metrics").text, "lockd_lock_cache_hits_total") == 49


def test_a_resolution_longer_than_its_lease_keeps_it_by_renewing(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    # torch cu124 takes ~40 requests: at 300 ms each the resolution outlives a 0.5 s lease many
    # times over, so the waiters would take over (and resolve again) without the renewals.
    mutable_index.set_latency(300)
    server = start_lockd(database_url, index=mutable_index, LOCKD_LEASE_TTL="0.5")
    body = "torch==2.5.1\n" + unique_requirements
    started = time.monotonic()
    responses = _post_many([server.url] * 5, server.tokens["lock"], body)
    assert time.monotonic() - started > 1.5
    assert sorted(r.status_code for r in responses) == [200] * 4 + [201]
    assert _resolutions(server) == 1


def test_a_failed_resolution_is_shared_by_its_waiters(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex
) -> None:
    mutable_index.set_latency(150)
    server = start_lockd(database_url, index=mutable_index)
    responses = _post_many([server.url] * 10, server.tokens["lock"], "lockd-fx-plain>=99\n")
    assert {r.status_code for r in responses} == {422}
    assert {r.json()["code"] for r in responses} == {"no-matching-distribution"}
    assert (
        metric_value(
            httpx.get(server.url + "/metrics").text,
            "lockd_resolutions_total",
            outcome="no-matching-distribution",
        )
        == 1
    )


@pytest.mark.postgres
def test_two_server_processes_on_one_postgres_resolve_once(
    start_lockd: StartLockd,
    postgres_databases: PostgresDatabases,
    mutable_index: ControlledIndex,
    unique_requirements: str,
) -> None:
    mutable_index.set_latency(150)
    url = postgres_databases.create()
    first = start_lockd(url, index=mutable_index)
    second = start_lockd(url, index=mutable_index)
    body = "torch==2.5.1\n" + unique_requirements
    started = time.monotonic()
    responses = _post_many([first.url, second.url] * 25, first.tokens["lock"], body)
    assert time.monotonic() - started < 60
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.content for r in responses}) == 1
    assert _resolutions(first) + _resolutions(second) == 1
    assert _revisions(first, responses[0].headers["input-digest"]) == 1


def test_other_requests_are_served_while_resolutions_hang(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    """More hanging resolutions than the read pool has threads: cache hits and reads still flow."""
    server = start_lockd(database_url, index=mutable_index)
    lock_token = server.tokens["lock"]
    stored = "lockd-fx-plain\n"
    assert _post_many([server.url], lock_token, stored)[0].status_code == 201
    mutable_index.set_fault("hang", seconds=4)
    hanging_bodies = [f"{unique_requirements}lockd-fx-extras!=0.0.{n}\n" for n in range(6)]
    with ThreadPoolExecutor(max_workers=len(hanging_bodies)) as pool:
        hanging = [pool.submit(_post_many, [server.url], lock_token, body) for body in hanging_bodies]
        time.sleep(0.3)
        slowest = 0.0
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {lock_token}"}) as client:
            for _ in range(20):
                for method, path in (
                    ("GET", "/healthz"),
                    ("GET", "/v1/locks"),
                    ("GET", "/metrics"),
                    ("POST", "/lock"),
                ):
                    started = time.monotonic()
                    content = stored if method == "POST" else None
                    response = client.request(
                        method, path + (f"?{TARGET}" if method == "POST" else ""), content=content
                    )
                    assert response.status_code == 200, (path, response.text[:300])
                    slowest = max(slowest, time.monotonic() - started)
        assert not any(h.done() for h in hanging)  # still hanging on the index while the others were answered
        assert slowest < 1.0
        mutable_index.set_fault(None)
        assert all(h.result()[0].status_code in (201, 502) for h in hanging)
