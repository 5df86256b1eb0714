"""Bearer tokens (RFC 6750): create (optionally expiring), authenticate, list and revoke.

A token is `lockd_` and 256 random bits, shown once and stored only as its sha256. A token the
database confirmed is trusted for `TOKEN_CACHE_SECONDS` without asking again, so the HTTP layer
answers most requests without a query; that is also the bound on how long a revoked token
keeps working in a replica that has just seen it (the replica that revokes it forgets it at
once). An expiring token is never trusted past its expiry. Unknown tokens are never cached, so
a new token works at once. A token's last use is recorded at most once a minute, best effort.
Which scopes exist, and what each grants, is `lockd.scopes`. A `read` or `lock` token may be
limited to lock-name patterns (`vision/*`, see `lockd.naming`): its `Grant` carries them.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from lockd.errors import InvalidRequest, LockdError, NotFound
from lockd.memory_cache import BoundedCache
from lockd.naming import parse_name_patterns
from lockd.scopes import granted_scopes
from lockd.store import TokenRecord, queries, read, transaction

__all__ = ["TOKEN_CACHE_SECONDS", "Grant", "TokenInfo", "Tokens", "expiry_from_text"]

_TOKEN_PREFIX = "lockd_"
# How long a token's scopes are trusted without asking the database: the bound on how long a
# revoked token keeps working.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_ENTRIES = 1024
_USE_RECORDED_EVERY = timedelta(minutes=1)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """What an operator sees of a token: never the token, nor its hash."""

    id: int
    name: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    name_prefixes: tuple[str, ...] | None = None  # None: any name

    @classmethod
    def of(cls, record: TokenRecord) -> TokenInfo:
        return cls(
            id=record.id,
            name=record.name,
            scopes=record.scopes,
            created_at=record.created_at,
            expires_at=record.expires_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            name_prefixes=record.name_prefixes,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """What a live token may do: its scopes, the lock names it is limited to, and whose it is."""

    scopes: frozenset[str]
    name_prefixes: tuple[str, ...] | None  # None: any name
    token_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Confirmed:
    grant: Grant
    expires_at: float | None  # epoch seconds


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def expiry_from_text(text: str, now: datetime) -> datetime:
    """`90d`, `12h`, `30m`, `45s` from `now`, or an ISO 8601 time (UTC unless it says otherwise)."""
    value = text.strip()
    unit = _UNITS.get(value[-1:].lower())
    if unit is not None and value[:-1].isdigit() and len(value) <= 12:
        return now + timedelta(seconds=int(value[:-1]) * unit)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"cannot read {text!r} as an expiry",
            hint="give a duration such as 90d, 12h or 30m, or a time such as 2027-01-01T00:00:00Z",
            context={"expires": text},
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _token_hash(token: str) -> str:
    # A 256-bit random token needs no slow KDF: sha256 is preimage-resistant at that entropy.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """The tokens of one database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._recent: BoundedCache[str, _Confirmed] = BoundedCache(_TOKEN_ENTRIES, ttl=TOKEN_CACHE_SECONDS)

    def create(
        self,
        *,
        name: str,
        scope: str,
        expires_at: datetime | None = None,
        name_prefixes: Sequence[str] | None = None,
    ) -> str:
        """A new bearer token with `scope` (and the scopes it includes); shown once, stored hashed.

        With `expires_at` (aware, in the future), the token is refused from then on. With
        `name_prefixes` (`vision/*`), it acts only on lock names those patterns match.
        """
        return self.issue(name=name, scope=scope, expires_at=expires_at, name_prefixes=name_prefixes)[0]

    def issue(
        self,
        *,
        name: str,
        scope: str,
        expires_at: datetime | None = None,
        name_prefixes: Sequence[str] | None = None,
    ) -> tuple[str, TokenInfo]:
        """`create`, with what `list` will show of the new token."""
        granted = granted_scopes(scope)
        patterns = None if name_prefixes is None else parse_name_patterns(name_prefixes)
        if patterns is not None and (not patterns or "admin" in granted):
            raise InvalidRequest(
                "only read and lock tokens can be limited to lock names, and to at least one pattern",
                context={"scope": scope, "name_prefixes": list(name_prefixes or ())},
            )
        now = datetime.now(UTC)
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidRequest(
                "a token's expiry must be a time in the future, with its time zone",
                context={"expires_at": expires_at.isoformat()},
            )
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self._engine, write=True) as conn:
            token_id = queries.create_token(
                conn,
                name=name,
                token_hash=_token_hash(token),
                scopes=granted,
                now=now,
                expires_at=expires_at,
                name_prefixes=patterns,
            )
        info = TokenInfo(
            id=token_id,
            name=name,
            scopes=granted,
            created_at=now,
            expires_at=expires_at,
            last_used_at=None,
            revoked_at=None,
            name_prefixes=patterns,
        )
        return token, info

    def authenticate(self, token: str) -> frozenset[str] | None:
        """The scopes of a live token, or None (see `authorize`)."""
        grant = self.authorize(token)
        return None if grant is None else grant.scopes

    def authorize(self, token: str) -> Grant | None:
        """What a live token may do, or None. The hash is compared in constant time.

        A live token is remembered for `TOKEN_CACHE_SECONDS` (see `cached_grant`).
        """
        presented = _token_hash(token)
        now = datetime.now(UTC)
        found = read(self._engine, lambda conn: queries.find_token(conn, presented, now=now))
        if found is None:
            self._recent.pop(presented)
            return None
        if not hmac.compare_digest(found.token_hash, presented):
            return None
        expires = None if found.expires_at is None else found.expires_at.timestamp()
        grant = Grant(scopes=found.scopes, name_prefixes=found.name_prefixes, token_name=found.name)
        self._recent.put(presented, _Confirmed(grant=grant, expires_at=expires))
        if found.last_used_at is None or found.last_used_at < now - _USE_RECORDED_EVERY:
            self._record_use(found.id, now)
        return grant

    def _record_use(self, token_id: int, now: datetime) -> None:
        try:
            with transaction(self._engine, write=True) as conn:
                queries.touch_token(conn, token_id, now=now, not_since=now - _USE_RECORDED_EVERY)
        except LockdError as exc:  # a database that cannot write still authenticates
            log.debug("could not record a token's use: %s", exc.message)

    def cached_scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a token the database confirmed lately (see `cached_grant`). Never blocks."""
        grant = self.cached_grant(token)
        return None if grant is None else grant.scopes

    def cached_grant(self, token: str) -> Grant | None:
        """The grant of a token the database confirmed in the last `TOKEN_CACHE_SECONDS`, else
        None (unknown here, not necessarily invalid: ask `authorize`). Never blocks."""
        presented = _token_hash(token)
        found = self._recent.get(presented)
        if found is None:
            return None
        if found.expires_at is not None and time.time() >= found.expires_at:
            self._recent.pop(presented)
            return None
        return found.grant

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, revoked ones too, oldest first."""
        return [TokenInfo.of(record) for record in read(self._engine, queries.list_tokens)]

    def revoke(self, token_id: int) -> TokenInfo:
        """Revoke a token: refused at once here, and within `TOKEN_CACHE_SECONDS` on every replica."""
        with transaction(self._engine, write=True) as conn:
            record = queries.revoke_token(conn, token_id, now=datetime.now(UTC))
        if record is None:
            raise NotFound(f"no token {token_id}", context={"token_id": token_id})
        self._recent.pop(record.token_hash)
        return TokenInfo.of(record)
