"""Faults of the index and the database: each gives a clear problem, stores nothing, and heals.

The index faults come from the fixture index (`mutable_index.set_fault`), a closed port, and a
file whose bytes change under a page lockd already holds. The database faults are real: an
unmigrated database at start, and a PostgreSQL database whose connections are terminated and
which is renamed away (and back) while the server runs, including in the middle of a resolution.
(A 500 on every request, a resolution over its budget, a missing database at start and requests
served while one resolution hangs are in test_http_errors.py and test_http_concurrency.py.)
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fixtures.served_index import ControlledIndex
from tests.support import (
    LockdServer,
    PostgresDatabases,
    StartLockd,
    assert_problem,
    fresh_database,
    row_counts,
    wait_until,
)

LINUX = {"platform": "linux_x86_64", "python": "3.11"}
LOCK_TABLES = ("inputs", "locks", "lock_packages", "lock_files", "revisions")


def post_lock(server: LockdServer, text: str, timeout: float = 60) -> httpx.Response:
    with server.client("lock", timeout=timeout) as client:
        return client.post("/lock", params=LINUX, content=text, headers={"content-type": "text/plain"})


def assert_nothing_stored(server: LockdServer) -> None:
    counts = row_counts(server.database_url)
    assert {t: counts[t] for t in LOCK_TABLES} == dict.fromkeys(LOCK_TABLES, 0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: connection refused


def test_index_down_is_502_then_heals(
    start_lockd: StartLockd, database_url: str, unique_requirements: str
) -> None:
    port = closed_port()
    server = start_lockd(database_url, LOCKD_INDEX_URL=f"http://127.0.0.1:{port}/simple/")
    problem = assert_problem(post_lock(server, unique_requirements), 502, "index-unavailable")
    assert f"127.0.0.1:{port}" in problem["detail"]
    assert_nothing_stored(server)
    with server.client(None) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200  # the index is not the server's readiness


@pytest.mark.parametrize(
    ("mode", "prefix", "code"),
    [
        ("hang", "/simple/", "index-unavailable"),  # slower than LOCKD_HTTP_TIMEOUT
        ("500", "/files/", "index-unavailable"),  # pages fine, files and metadata fail
        ("truncate", "/simple/", "index-unavailable"),
        ("truncate", "/files/", "index-unavailable"),
        ("garbage", "/simple/", "index-unavailable"),
    ],
    ids=["slow-page", "5xx-files", "truncated-page", "truncated-file", "garbage-page"],
)
def test_index_fault_is_a_problem_and_nothing_is_stored(  # noqa: PLR0917 (pytest passes parameters positionally)
    start_lockd: StartLockd,
    database_url: str,
    mutable_index: ControlledIndex,
    unique_requirements: str,
    mode: str,
    prefix: str,
    code: str,
) -> None:
    server = start_lockd(database_url, index=mutable_index, LOCKD_HTTP_TIMEOUT="0.5", LOCKD_PAGE_TTL="0")
    # lockd-fx-sdist-static's metadata comes from downloading its sdist whole, so file faults bite.
    text = unique_requirements + "lockd-fx-sdist-static\n"
    mutable_index.set_fault(mode, seconds=2.0, path_prefix=prefix)
    started = time.monotonic()
    problem = assert_problem(post_lock(server, text), 502, code)
    assert time.monotonic() - started < 30
    assert "index" in problem["title"].lower() or "index" in problem["detail"].lower()
    assert_nothing_stored(server)
    mutable_index.set_fault(None)
    time.sleep(2.2 if mode == "hang" else 0)  # let an abandoned slow fetch finish first
    healed = post_lock(server, text)
    assert healed.status_code == 201, healed.text
    assert "lockd-fx-sdist-static==1.0" in healed.text


def test_file_bytes_not_matching_the_listed_hash_are_refused(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, unique_requirements: str
) -> None:
    server = start_lockd(database_url, index=mutable_index, LOCKD_PAGE_TTL="3600")
    # A first request that reads the project page (cached, with the sdist's sha256) but no file.
    assert_problem(post_lock(server, "lockd-fx-sdist-static>5\n"), 422, "no-matching-distribution")
    (sdist,) = [a for a in mutable_index.files("lockd-fx-sdist-static") if a.filename.endswith(".tar.gz")]
    listed = sdist.sha256
    new = mutable_index.replace_content(sdist.filename)
    assert new != listed
    # The page lockd holds still lists the old hash; the bytes served now have another.
    problem = assert_problem(
        post_lock(server, unique_requirements + "lockd-fx-sdist-static\n"), 502, "hash-mismatch"
    )
    assert problem["context"]["filename"] == sdist.filename
    assert_nothing_stored(server)


def test_unmigrated_database_at_start(
    start_lockd: StartLockd, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = fresh_database(backend, request, tmp_path, migrated=False)
    server = start_lockd(url, tokens=False)
    with httpx.Client(base_url=server.url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["schema"] is None and "lockd migrate" in ready.json()["detail"]
        problem = assert_problem(client.get("/v1/locks"), 503, "store-unavailable")
        assert "migrate" in problem["hint"]
        assert client.get("/healthz").status_code == 200


def _admin(server: LockdServer) -> tuple[sa.Engine, str]:
    database = server.database_url.rsplit("/", 1)[1]
    admin_url = server.database_url.rsplit("/", 1)[0] + "/postgres"
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool), database


def _terminate(admin: sa.Engine, database: str) -> int:
    with admin.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": database},
        ).all()
    return len(rows)


def _rename(admin: sa.Engine, old: str, new: str) -> None:
    for _ in range(50):  # a pooled connection may reconnect between terminate and rename
        _terminate(admin, old)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
            return
        except sa.exc.OperationalError:
            time.sleep(0.05)
    raise AssertionError(f"could not rename {old}")


@pytest.mark.postgres
def test_postgres_connections_killed_and_database_gone_mid_flight(
    start_lockd: StartLockd,
    postgres_databases: PostgresDatabases,
    mutable_index: ControlledIndex,
    unique_requirements: str,
) -> None:
    url = postgres_databases.create()
    server = start_lockd(url, index=mutable_index)
    admin, database = _admin(server)
    try:
        assert post_lock(server, unique_requirements).status_code == 201
        # Every pooled connection killed under the server: the next requests reconnect.
        assert _terminate(admin, database) >= 1
        with server.client("read") as client:
            for _ in range(5):
                assert client.get("/v1/locks").status_code == 200
        assert post_lock(server, unique_requirements).status_code == 200

        # The database disappears while a resolution is waiting on the index.
        mutable_index.set_fault("hang", seconds=2.0, count=1, path_prefix="/simple/lockd-fx-extras")
        answers: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: answers.append(post_lock(server, "lockd-fx-extras\n")))
        worker.start()
        time.sleep(0.5)
        _rename(admin, database, database + "_away")
        try:
            worker.join(60)
            assert answers, "the resolution never answered"
            assert_problem(answers[0], 503, "store-unavailable")
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {server.tokens['lock']}"}
            ) as c:
                assert c.get("/readyz").status_code == 503
                assert c.get("/healthz").status_code == 200
                assert_problem(c.get("/v1/locks"), 503, "store-unavailable")
                assert_problem(
                    c.post(
                        "/lock",
                        params=LINUX,
                        content="lockd-fx-plain\n",
                        headers={"content-type": "text/plain"},
                    ),
                    503,
                    "store-unavailable",
                )
        finally:
            _rename(admin, database + "_away", database)
        # Back: nothing partial was written by the interrupted resolution, and it now succeeds.
        counts = row_counts(url)
        assert counts["inputs"] == counts["revisions"] == 1
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 15, "never ready again")
        assert post_lock(server, "lockd-fx-extras\n").status_code == 201
        counts = row_counts(url)
        assert counts["inputs"] == counts["revisions"] == 2
    finally:
        admin.dispose()
