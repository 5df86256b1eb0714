"""Pydantic models of the HTTP API (pydantic lives only at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from lockd.render import FILE_NAMES

__all__ = [
    "LockBody",
    "LockInfo",
    "LockLinks",
    "LockList",
    "LockListItem",
    "OptionsBody",
    "RefreshInfo",
    "RevisionInfo",
    "RevisionList",
    "TargetBody",
]

if TYPE_CHECKING:
    FileName = str
else:
    # The served file names, from the format table (a Literal, so the API schema lists them).
    FileName = Literal[FILE_NAMES]


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(examples=["linux_x86_64"])
    python: str = Field(examples=["3.11"])
    cuda: str | None = Field(default=None, examples=["cu124"])


class OptionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prereleases: bool = False
    as_of: datetime | None = None
    only_binary: bool = False


class LockBody(BaseModel):
    """`requirements` and `constraints` are requirements.in text, or a list of lines."""

    model_config = ConfigDict(extra="forbid")

    requirements: str | list[str] = Field(max_length=1_000_000, examples=["torch==2.5.1\nnumpy\n"])
    constraints: str | list[str] = ""
    target: TargetBody
    options: OptionsBody = OptionsBody()
    # Configured private indexes, by name only: index URLs are configuration, never input.
    indexes: list[str] = []


class LockLinks(BaseModel):
    self: str
    revisions: str
    refresh: str
    files: dict[str, str]


class RevisionInfo(BaseModel):
    input_digest: str
    revision: int
    lock_digest: str
    created_at: datetime
    reason: str
    files: dict[str, str]


class RevisionList(BaseModel):
    input_digest: str
    revisions: list[RevisionInfo]


class LockInfo(BaseModel):
    input_digest: str
    lock_digest: str
    revision: int
    created: bool | None = None
    created_at: datetime
    target: dict[str, str | None]
    requirements: list[str]
    constraints: list[str]
    # What the consumer must know: an sdist pin needs a compiler; a yanked pin was taken on `==`.
    warnings: list[dict[str, str]] = []
    links: LockLinks


class RefreshInfo(BaseModel):
    input_digest: str
    changed: bool
    previous_revision: int
    revision: int
    lock_digest: str
    previous_lock_digest: str
    links: LockLinks


class LockListItem(BaseModel):
    input_digest: str
    lock_digest: str
    revision: int
    target: dict[str, str | None]
    package_count: int
    created_at: datetime
    updated_at: datetime
    links: LockLinks


class LockList(BaseModel):
    items: list[LockListItem]
    next: str | None
