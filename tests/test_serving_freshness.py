"""Replicas serve cache hits from memory, yet never an old revision: a refresh promoted through one
server is what another server on the same database serves within a second.

Each server keeps the current revision of the inputs it served in memory (`lockd.store.changes`:
LISTEN/NOTIFY on PostgreSQL, `data_version` on SQLite); these tests warm that memory on the
second server first, so a missed change would keep the old revision there for good.
"""

from __future__ import annotations

import time

import httpx

from fixtures.served_index import ControlledIndex
from tests.support import LockdServer, StartLockd

TARGET = "python=3.11&platform=linux_x86_64"
_FRESH_WITHIN = 1.0


def _current(server: LockdServer, digest: str) -> httpx.Response:
    with server.client(scope="read") as client:
        return client.get(f"/v1/locks/{digest}/requirements.txt")


def test_a_refresh_through_one_server_is_served_by_another_within_a_second(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    first = start_lockd(database_url, index=mutable_index, LOCKD_PAGE_TTL="0", LOCKD_AUTO_PROMOTE="always")
    second = start_lockd(database_url, index=mutable_index, LOCKD_PAGE_TTL="0", LOCKD_AUTO_PROMOTE="always")
    with first.client() as client:
        created = client.post(f"/lock?{TARGET}", content=unique_requirements.encode())
    assert created.status_code == 201, created.text
    digest = created.headers["input-digest"]
    with second.client() as client:
        for _ in range(3):  # served, then kept: the second server answers from memory
            hit = client.post(f"/lock?{TARGET}", content=unique_requirements.encode())
            assert (hit.status_code, hit.headers["lock-revision"]) == (200, "1")
            assert _current(second, digest).headers["lock-revision"] == "1"

    mutable_index.publish("lockd-fx-plain", "9.0")
    with first.client() as client:
        refreshed = client.post(f"/v1/locks/{digest}/refresh")
    promoted_at = time.monotonic()
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["revision"] == 2

    seen: list[tuple[float, str, str]] = []
    while time.monotonic() - promoted_at < 5 * _FRESH_WITHIN:
        served = _current(second, digest)
        with second.client() as client:
            posted = client.post(f"/lock?{TARGET}", content=unique_requirements.encode())
        seen.append(
            (time.monotonic() - promoted_at, served.headers["lock-revision"], posted.headers["lock-revision"])
        )
        if seen[-1][1:] == ("2", "2"):
            break
        time.sleep(0.02)
    when, file_revision, post_revision = seen[-1]
    assert (file_revision, post_revision) == ("2", "2"), f"the second server still serves {seen[-1]}"
    assert when < _FRESH_WITHIN, f"the second server served the new revision after {when:.2f} s"
    assert b"lockd-fx-plain==9.0" in _current(second, digest).content


def test_a_repeated_post_is_answered_from_memory_exactly_as_the_route_answers_it(
    lockd_server: LockdServer, unique_requirements: str
) -> None:
    answers = []
    with lockd_server.client() as client:
        for _ in range(4):  # created, then the route's hit (remembered), then hits answered before routing
            response = client.post(f"/lock?{TARGET}", content=unique_requirements.encode())
            headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
            answers.append((response.status_code, headers, response.content))
        metrics = client.get("/metrics").text
        # Another token's scope still counts: a read token may not lock, hot or not.
        refused = httpx.post(
            f"{lockd_server.url}/lock?{TARGET}",
            content=unique_requirements.encode(),
            headers={"Authorization": f"Bearer {lockd_server.tokens['read']}"},
        )
    assert answers[0][0] == 201
    assert answers[1] == answers[2] == answers[3]
    assert answers[1][0] == 200
    assert 'route="/lock"' in metrics
    assert refused.status_code == 403


def test_a_name_moved_through_one_server_is_served_by_another_within_a_second(
    start_lockd: StartLockd, database_url: str, unique_requirements: str
) -> None:
    first = start_lockd(database_url)
    second = start_lockd(database_url)
    name = "fresh/served"
    with first.client() as client:
        made = client.post(f"/lock?{TARGET}&name={name}", content=unique_requirements.encode())
    assert made.status_code in (200, 201), made.text
    with second.client(scope="read") as client:
        for _ in range(3):  # served, then kept
            assert (
                client.get(f"/v1/names/{name}/requirements.txt").headers["input-digest"]
                == made.headers["input-digest"]
            )
    with first.client() as client:
        moved = client.post(
            f"/lock?{TARGET}&name={name}", content=(unique_requirements + "lockd-fx-plain\n").encode()
        )
    moved_at = time.monotonic()
    assert moved.status_code in (200, 201), moved.text
    assert moved.headers["input-digest"] != made.headers["input-digest"]
    with second.client(scope="read") as client:
        while True:
            served = client.get(f"/v1/names/{name}/requirements.txt")
            waited = time.monotonic() - moved_at
            if served.headers["input-digest"] == moved.headers["input-digest"] or waited > 5 * _FRESH_WITHIN:
                break
            time.sleep(0.02)
    assert served.headers["input-digest"] == moved.headers["input-digest"], "the old input is still served"
    assert waited < _FRESH_WITHIN, f"the second server served the moved name after {waited:.2f} s"
