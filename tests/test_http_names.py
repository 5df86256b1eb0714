"""The names API over HTTP: naming on both lock routes, reads, proposals and promotion, the gate,
admin actions, and the bad inputs: unknown name 404, stale proposal 409, upgrade outside the
lock 422, token outside its name patterns 403, with nothing half-written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from lockd.service import Service
from tests.support import LockdServer, assert_problem, row_counts

TARGET = {"platform": "linux_x86_64", "python": "3.11"}
TEXT = {"content-type": "text/plain"}


def _token(server: LockdServer, scope: str, *patterns: str) -> httpx.Client:
    service = Service.open(server.settings())
    try:
        token = service.tokens.create(name=f"team-{scope}", scope=scope, name_prefixes=list(patterns))
    finally:
        service.close()
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_names_over_http(
    start_lockd: Callable[..., LockdServer], database_url: str, mutable_index: Any
) -> None:
    server = start_lockd(database_url, index=mutable_index, LOCKD_PUBLIC_URL="https://lockd.example")
    with server.client("lock") as locker, server.client("read") as reader, server.client("admin") as admin:
        made = locker.post(
            "/lock", params={**TARGET, "name": "vision/trainer"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert made.status_code == 201 and made.headers["location"] == "/v1/names/vision/trainer"
        as_json = locker.post(
            "/v1/locks",
            json={
                "requirements": ["lockd-fx-plain", "lockd-fx-pyreq"],
                "target": TARGET,
                "name": "vision/trainer",
            },
        )
        assert as_json.status_code == 201 and as_json.json()["name"] == "vision/trainer"

        name = reader.get("/v1/names/vision/trainer").json()
        assert name["input_digest"] == as_json.json()["input_digest"] and name["revision"] == 1
        assert name["provenance"]["preferences"] == {"lockd-fx-plain": "1.1"}
        served = reader.get("/v1/names/vision/trainer/requirements.txt")
        assert served.status_code == 200 and b"lockd-fx-pyreq==1.0" in served.content
        assert served.headers["lock-digest"] == name["lock_digest"]
        assert [n["name"] for n in reader.get("/v1/names").json()["items"]] == ["vision/trainer"]
        assert [e["action"] for e in reader.get("/v1/names/vision/trainer/history").json()["events"]] == [
            "created",
            "moved",
        ]

        mutable_index.publish("lockd-fx-plain", "1.1.1")
        refreshed = locker.post("/v1/names/vision/trainer/refresh").json()
        proposal = refreshed["proposal"]
        assert not refreshed["changed"] and proposal["status"] == "open"
        assert proposal["promote"].startswith('curl -fsS -X POST -H "Authorization: Bearer $LOCKD_TOKEN" ')
        assert proposal["promote"].endswith(
            f"https://lockd.example/v1/names/vision/trainer/proposals/{proposal['id']}/promote"
        )
        listed = reader.get("/v1/names/vision/trainer/proposals").json()["items"]
        assert [p["id"] for p in listed] == [proposal["id"]]
        status = reader.get("/v1/names/vision/trainer/status").json()
        assert status["drift"] is None and status["proposal"]["id"] == proposal["id"]
        by_digest = reader.get(f"/v1/locks/{name['input_digest']}/status").json()
        assert by_digest["proposal"]["id"] == proposal["id"] and by_digest["name"] is None

        # Unknown name 404; upgrade outside the lock 422; upgrade without a name 422.
        assert_problem(reader.get("/v1/names/vision/nobody"), 404, "not-found")
        assert_problem(reader.get("/v1/names/vision/nobody/status"), 404, "not-found")
        before = row_counts(server.database_url)
        upgrade = locker.post(
            "/lock",
            params={**TARGET, "name": "vision/trainer", "upgrade": "numpy"},
            content="lockd-fx-plain\nlockd-fx-speedups\n",
            headers=TEXT,
        )
        assert assert_problem(upgrade, 422, "upgrade-not-in-lock")["context"]["packages"] == ["numpy"]
        unnamed = locker.post(
            "/lock", params={**TARGET, "upgrade": "all"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert_problem(unnamed, 422, "upgrade-not-in-lock")
        bad = locker.post(
            "/lock", params={**TARGET, "name": "Vision"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert_problem(bad, 422, "invalid-name")
        assert row_counts(server.database_url) == before

        # Promote: then the same proposal is stale (409); what the name serves moved.
        promoted = locker.post(f"/v1/names/vision/trainer/proposals/{proposal['id']}/promote")
        assert promoted.status_code == 200 and promoted.json()["revision"] == 2
        assert_problem(
            locker.post(f"/v1/names/vision/trainer/proposals/{proposal['id']}/promote"), 409, "stale-proposal"
        )
        assert reader.get("/v1/names/vision/trainer").json()["revision"] == 2

        # Admin: a name's own policy, archive (still served), delete (404 after).
        policy = admin.put("/v1/names/vision/trainer/policy", json={"auto_promote": "patch"})
        assert policy.status_code == 200 and policy.json()["auto_promote"] == "patch"
        assert_problem(
            locker.put("/v1/names/vision/trainer/policy", json={"auto_promote": None}), 403, "forbidden"
        )
        archived = admin.post("/v1/names/vision/trainer/archive").json()
        assert archived["status"] == "archived"
        assert reader.get(f"/v1/locks/{archived['input_digest']}/status").json()["retired"]
        again = locker.post(
            "/lock", params={**TARGET, "name": "vision/trainer"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert_problem(again, 409, "name-archived")
        assert admin.delete("/v1/names/vision/trainer").status_code == 204
        assert_problem(reader.get("/v1/names/vision/trainer"), 404, "not-found")


def test_a_token_limited_to_name_patterns_acts_only_on_those(
    start_lockd: Callable[..., LockdServer], database_url: str, mutable_index: Any
) -> None:
    server = start_lockd(database_url, index=mutable_index)
    vision = _token(server, "lock", "vision/*")
    with vision, server.client("lock") as anyone:
        ok = vision.post(
            "/lock", params={**TARGET, "name": "vision/a"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert ok.status_code == 201, ok.text
        other = anyone.post(
            "/lock", params={**TARGET, "name": "audio/a"}, content="lockd-fx-plain\n", headers=TEXT
        )
        assert other.status_code == 200  # the same input, locked under another name
        before = row_counts(server.database_url)
        outside = vision.post(
            "/lock", params={**TARGET, "name": "audio/a"}, content="lockd-fx-pyreq\n", headers=TEXT
        )
        assert assert_problem(outside, 403, "forbidden")["context"]["name_prefixes"] == ["vision/*"]
        unnamed = vision.post("/lock", params=TARGET, content="lockd-fx-pyreq\n", headers=TEXT)
        assert_problem(unnamed, 403, "forbidden")
        assert row_counts(server.database_url) == before
        digest = ok.headers["input-digest"]
        assert_problem(vision.post(f"/v1/locks/{digest}/refresh"), 403, "forbidden")
        assert_problem(vision.post("/v1/names/audio/a/refresh"), 403, "forbidden")
        assert_problem(vision.get("/v1/names/audio/a/status"), 403, "forbidden")
        assert vision.post("/v1/names/vision/a/refresh").status_code == 200
        assert [n["name"] for n in vision.get("/v1/names").json()["items"]] == ["vision/a"]
        # Blobs are content-addressed: a limited token still reads them by digest.
        assert vision.get(f"/v1/blobs/{ok.headers['lock-digest']}/requirements.txt").status_code == 200
    with server.client("admin") as admin:
        made = admin.post(
            "/v1/tokens", json={"scope": "read", "name": "audio-ci", "name_prefixes": ["audio/*"]}
        )
        assert made.status_code == 201 and made.json()["name_prefixes"] == ["audio/*"]
        refused = admin.post(
            "/v1/tokens", json={"scope": "admin", "name": "x", "name_prefixes": ["vision/*"]}
        )
        assert_problem(refused, 400, "invalid-request")
    audio = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {made.json()['token']}"})
    with audio:
        assert audio.get("/v1/names/audio/a/status").status_code == 200
        assert_problem(audio.get("/v1/names/vision/a"), 403, "forbidden")
