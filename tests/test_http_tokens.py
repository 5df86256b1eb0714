"""The admin token routes on a live server: create (shown once), use, list, revoke, expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.support import LockdServer


def _as(server: LockdServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_an_admin_creates_lists_and_revokes_tokens(lockd_server: LockdServer) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=1)
    with lockd_server.client("admin") as admin:
        created = admin.post(
            "/v1/tokens", json={"name": "ci-job", "scope": "lock", "expires_at": expires_at.isoformat()}
        )
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        body = created.json()
        token, token_id = body["token"], body["id"]
        assert token.startswith("lockd_") and body["scopes"] == ["lock", "read"]
        assert datetime.fromisoformat(body["expires_at"]) == expires_at

        with _as(lockd_server, token) as holder:
            assert holder.get("/v1/locks").status_code == 200
            assert holder.get("/v1/tokens").status_code == 403  # only an admin sees tokens

        listed = {item["id"]: item for item in admin.get("/v1/tokens").json()["items"]}
        assert listed[token_id]["name"] == "ci-job" and listed[token_id]["last_used_at"] is not None
        assert all("token" not in item and "token_hash" not in item for item in listed.values())

        revoked = admin.delete(f"/v1/tokens/{token_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        with _as(lockd_server, token) as holder:
            refused = holder.get("/v1/locks")
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        assert admin.delete("/v1/tokens/999999").status_code == 404

        past = admin.post("/v1/tokens", json={"scope": "read", "expires_at": "2020-01-01T00:00:00Z"})
        assert past.status_code in (400, 422) and past.json()["code"] == "invalid-request"
