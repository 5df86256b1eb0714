"""Bearer tokens (RFC 6750): create, authenticate, list and revoke, with a short-lived cache.

A token is `lockd_` and 256 random bits, shown once and stored only as its sha256. A token the
database confirmed is trusted for `TOKEN_CACHE_SECONDS` without asking again, so the HTTP layer
answers most requests without a query; that is also the bound on how long a revoked token
keeps working in a replica that has just seen it. Unknown tokens are never cached, so a new
token works at once. Which scopes exist, and what each grants, is `lockd.scopes`.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from lockd.errors import NotFound
from lockd.memory_cache import BoundedCache
from lockd.scopes import granted_scopes
from lockd.store import TokenRecord, queries, read, transaction

__all__ = ["TOKEN_CACHE_SECONDS", "TokenInfo", "Tokens"]

_TOKEN_PREFIX = "lockd_"
# How long a token's scopes are trusted without asking the database: the bound on how long a
# revoked token keeps working.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_ENTRIES = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """What an operator sees of a token: never the token, nor its hash."""

    id: int
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenInfo:
        return cls(
            id=record.id,
            name=record.name,
            scopes=record.scopes,
            created_at=record.created_at,
            revoked_at=record.revoked_at,
        )


def _token_hash(token: str) -> str:
    # A 256-bit random token needs no slow KDF: sha256 is preimage-resistant at that entropy.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Tokens:
    """The tokens of one database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._recent: BoundedCache[str, frozenset[str]] = BoundedCache(_TOKEN_ENTRIES, ttl=TOKEN_CACHE_SECONDS)

    def create(self, *, name: str, scope: str) -> str:
        """A new bearer token with `scope` (and the scopes it includes); shown once, stored hashed."""
        granted = granted_scopes(scope)
        token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self._engine, write=True) as conn:
            queries.create_token(conn, name=name, token_hash=_token_hash(token), scopes=granted, now=datetime.now(UTC))
        return token

    def authenticate(self, token: str) -> frozenset[str] | None:
        """The scopes of a live token, or None. The hash is compared in constant time.

        A live token is remembered for `TOKEN_CACHE_SECONDS` (see `cached_scopes`).
        """
        presented = _token_hash(token)
        found = read(self._engine, lambda conn: queries.find_token(conn, presented))
        if found is None:
            self._recent.pop(presented)
            return None
        if not hmac.compare_digest(found.token_hash, presented):
            return None
        self._recent.put(presented, found.scopes)
        return found.scopes

    def cached_scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of a token the database confirmed in the last `TOKEN_CACHE_SECONDS`, else
        None (unknown here, not necessarily invalid: ask `authenticate`). Never blocks."""
        return self._recent.get(_token_hash(token))

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
