"""only_binary through the query and JSON, and lock warnings in the response, via a live server."""

from __future__ import annotations

from tests.support import LockdServer

TARGET = {"platform": "linux_x86_64", "python": "3.11"}


def test_a_lock_pinning_an_sdist_says_so_and_only_binary_refuses_it(lockd_server: LockdServer) -> None:
    with lockd_server.client() as client:
        answer = client.post("/v1/locks", json={"requirements": "lockd-fx-sdist-static\n", "target": TARGET})
        assert answer.status_code in (200, 201), answer.text
        (warning,) = answer.json()["warnings"]
        assert warning["kind"] == "sdist" and warning["package"] == "lockd-fx-sdist-static"
        raw = client.post("/lock?platform=linux_x86_64&python=3.11", content=b"lockd-fx-sdist-static\n")
        assert raw.status_code in (200, 201), raw.text
        assert "# warning: lockd-fx-sdist-static 1.0 is locked as a source distribution" in raw.text
        refused = client.post(
            "/v1/locks",
            json={
                "requirements": "lockd-fx-sdist-static\n",
                "target": TARGET,
                "options": {"only_binary": True},
            },
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "no-matching-distribution"
        query = client.post(
            "/lock?platform=linux_x86_64&python=3.11&only_binary=true", content=b"lockd-fx-sdist-static\n"
        )
        assert query.status_code == 422 and "asks for wheels only" in query.json()["detail"]
        plain = client.post("/v1/locks", json={"requirements": "lockd-fx-plain\n", "target": TARGET})
        assert plain.json()["warnings"] == []
