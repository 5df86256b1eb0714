"""The tokens resource (admin only): list tokens, create one (shown once), revoke one.

A token itself is in the answer to `POST /v1/tokens` and nowhere else: listings show its id,
name, scopes and dates. A revoked or expired token is refused at once by the replica that
revoked it and within a few seconds (`TOKEN_CACHE_SECONDS`) by every other replica.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from lockd.http.deps import ServiceDep, in_read_thread, in_thread, requires
from lockd.http.problems import ERROR_RESPONSES
from lockd.tokens import TokenInfo

__all__ = ["TokenBody", "TokenCreated", "TokenList", "TokenOut", "router"]

router = APIRouter(tags=["tokens"], dependencies=[Depends(requires("admin"))])


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="token", min_length=1, max_length=200, examples=["ci"])
    scope: Literal["admin", "lock", "read"] = Field(examples=["lock"])
    expires_at: datetime | None = Field(default=None, description="refused from then on (with a time zone)")
    name_prefixes: list[str] | None = Field(
        default=None,
        max_length=50,
        description="limit a read or lock token to lock names: vision/*",
        examples=[["vision/*"]],
    )


class TokenOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    name_prefixes: list[str] | None = None

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls(
            id=info.id,
            name=info.name,
            scopes=sorted(info.scopes),
            created_at=info.created_at,
            expires_at=info.expires_at,
            last_used_at=info.last_used_at,
            revoked_at=info.revoked_at,
            name_prefixes=None if info.name_prefixes is None else list(info.name_prefixes),
        )


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token: shown this once, stored only as a hash")


class TokenList(BaseModel):
    items: list[TokenOut]


@router.get(
    "/v1/tokens",
    response_model=TokenList,
    summary="Every token (never the tokens themselves)",
    responses=ERROR_RESPONSES,
)
async def list_tokens(request: Request, service: ServiceDep) -> TokenList:
    found = await in_read_thread(request, service.tokens.list)
    return TokenList(items=[TokenOut.of(info) for info in found])


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=TokenCreated,
    summary="Create a token; the answer is the only place it is ever shown",
    responses=ERROR_RESPONSES,
)
async def create_token(
    request: Request, response: Response, service: ServiceDep, body: TokenBody
) -> TokenCreated:
    token, info = await in_thread(
        request,
        lambda: service.tokens.issue(
            name=body.name, scope=body.scope, expires_at=body.expires_at, name_prefixes=body.name_prefixes
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated(token=token, **TokenOut.of(info).model_dump())


@router.delete(
    "/v1/tokens/{token_id}",
    response_model=TokenOut,
    summary="Revoke a token: refused from now on",
    responses=ERROR_RESPONSES,
)
async def revoke_token(
    request: Request, service: ServiceDep, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> TokenOut:
    return TokenOut.of(await in_thread(request, lambda: service.tokens.revoke(token_id)))
