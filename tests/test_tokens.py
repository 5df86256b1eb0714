"""Tokens on SQLite and PostgreSQL: scopes, expiry, last use, listing and revocation across replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from lockd.errors import InvalidRequest, NotFound
from lockd.store import open_engine
from lockd.tokens import Tokens, expiry_from_text
from tests.support import ROOT

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    opened = open_engine(database_url)
    yield opened
    opened.dispose()


def test_revoked_tokens_are_refused_at_once_and_listed_with_when(engine: Engine) -> None:
    tokens, other_replica = Tokens(engine), Tokens(engine)
    token = tokens.create(name="ci", scope="lock")
    assert other_replica.authenticate(token) == frozenset({"lock", "read"})
    assert tokens.authenticate(token) == frozenset({"lock", "read"})
    assert tokens.cached_scopes(token) == frozenset({"lock", "read"})
    (listed,) = tokens.list()
    assert (listed.name, listed.scopes, listed.revoked_at) == ("ci", frozenset({"lock", "read"}), None)
    assert listed.last_used_at is not None  # recorded on first use

    revoked = tokens.revoke(listed.id)
    assert revoked.revoked_at is not None and revoked.id == listed.id
    assert tokens.cached_scopes(token) is None  # this replica forgets it at once
    assert tokens.authenticate(token) is None
    assert other_replica.authenticate(token) is None  # every replica, as soon as it asks
    assert tokens.revoke(listed.id).revoked_at == revoked.revoked_at  # revoking twice keeps the first time
    assert [t.revoked_at for t in tokens.list()] == [revoked.revoked_at]
    with pytest.raises(NotFound):
        tokens.revoke(listed.id + 1000)


def test_an_expired_token_is_refused_even_from_the_cache(engine: Engine) -> None:
    tokens = Tokens(engine)
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    token = tokens.create(name="short", scope="read", expires_at=expires_at)
    assert tokens.authenticate(token) == frozenset({"read"})
    assert tokens.cached_scopes(token) == frozenset({"read"})
    deadline = time.monotonic() + 10
    while tokens.cached_scopes(token) is not None:
        assert time.monotonic() < deadline, "the cache kept an expired token"
        time.sleep(0.05)
    assert datetime.now(UTC) >= expires_at
    assert tokens.authenticate(token) is None
    (listed,) = tokens.list()
    assert listed.expires_at == expires_at
    with pytest.raises(InvalidRequest):
        tokens.create(name="past", scope="read", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidRequest):
        tokens.create(name="x", scope="root")


def test_expiry_from_text() -> None:
    assert expiry_from_text("90d", NOW) == NOW + timedelta(days=90)
    assert expiry_from_text("12h", NOW) == NOW + timedelta(hours=12)
    assert expiry_from_text("30m", NOW) == NOW + timedelta(minutes=30)
    assert expiry_from_text("2027-01-01T00:00:00", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert expiry_from_text("2027-01-01T02:00:00+02:00", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("", "soon", "-5d", "5w", "9" * 20 + "d"):
        with pytest.raises(InvalidRequest):
            expiry_from_text(bad, NOW)


def _lockd(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")},
        "LOCKD_DATABASE_URL": database_url,
    }
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "lockd", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# CLI plumbing over the same store code as above: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_token_command_creates_lists_and_revokes(database_url: str) -> None:
    created = _lockd(database_url, "token", "create", "--scope", "read", "--name", "dash", "--expires", "12h")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    listed = _lockd(database_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    token_id, name, scopes, dates = line.split("\t")
    assert (name, scopes) == ("dash", "read") and "revoked=-" in dates and "expires=20" in dates
    assert token not in listed.stdout
    revoked = _lockd(database_url, "token", "revoke", token_id)
    assert revoked.returncode == 0 and "revoked=20" in revoked.stdout
    engine = open_engine(database_url)
    try:
        assert Tokens(engine).authenticate(token) is None
    finally:
        engine.dispose()
    bad = _lockd(database_url, "token", "create", "--scope", "read", "--expires", "someday")
    assert bad.returncode == 1 and "90d" in bad.stderr
    missing = _lockd(database_url, "token", "revoke", "4242")
    assert missing.returncode == 1 and "no token 4242" in missing.stderr
