"""Readiness: whether this process can serve, as `/readyz` reports it to a load balancer.

Ready means the database answers and its schema is at the head migration this code expects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from lockd.errors import LockdError
from lockd.store import head_revision, schema_revision

__all__ = ["Readiness", "check_readiness"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    ready: bool
    database: bool
    schema: str | None
    head: str
    detail: str


def check_readiness(engine: Engine) -> Readiness:
    head = head_revision()
    try:
        current = schema_revision(engine)
    except LockdError as exc:
        return Readiness(ready=False, database=False, schema=None, head=head, detail=exc.message)
    if current != head:
        detail = f"schema at {current}, head is {head}: run `lockd migrate`"
        return Readiness(ready=False, database=True, schema=current, head=head, detail=detail)
    return Readiness(ready=True, database=True, schema=current, head=head, detail="ok")
