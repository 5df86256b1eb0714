"""Bearer-token scopes (RFC 6750 tokens): which scopes exist and what each one grants.

Kept apart from `lockd.tokens`, which stores tokens, so that the `lockd` command can offer
`--scope` choices without loading the database stack.
"""

from __future__ import annotations

from lockd.errors import InvalidRequest

__all__ = ["SCOPES", "granted_scopes"]

# Each scope includes the ones after it: an admin may lock, a locker may read.
SCOPES: tuple[str, ...] = ("admin", "lock", "read")


def granted_scopes(scope: str) -> frozenset[str]:
    """`scope` and the scopes it includes; raises `InvalidRequest` for an unknown scope."""
    if scope not in SCOPES:
        raise InvalidRequest(f"unknown scope {scope!r}", hint="use one of: " + ", ".join(SCOPES))
    return frozenset(SCOPES[SCOPES.index(scope) :])
