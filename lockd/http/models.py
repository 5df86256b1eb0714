"""Pydantic models of the HTTP API (pydantic lives only at the edge).

Every model a client sends is an `IntakeModel`: unknown fields are refused, and so is text
that is not Unicode. JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), which Python
decodes into a `str` that no UTF-8 encoder accepts; taken in, it failed later, in the store
or in the answer, as a 500.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lockd.limits import CUDA_CHARS, PLATFORM_CHARS, PYTHON_CHARS
from lockd.render import FILE_NAMES

__all__ = [
    "IntakeModel",
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


def _refuse_lone_surrogates(data: object) -> None:
    # A loop, not recursion: JSON nested as deep as the parser allows must not overflow here.
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                code = ord(value[exc.start])
                raise ValueError(
                    f"text holds an unpaired surrogate (\\u{code:04x}) at character {exc.start}: it is not Unicode"
                ) from None
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


class IntakeModel(BaseModel):
    """A body a client sends: no unknown fields, and only Unicode text in keys and values."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _unicode_only(cls, data: Any) -> Any:
        _refuse_lone_surrogates(data)
        return data


class TargetBody(IntakeModel):
    platform: str = Field(max_length=PLATFORM_CHARS, examples=["linux_x86_64"])
    python: str = Field(max_length=PYTHON_CHARS, examples=["3.11"])
    cuda: str | None = Field(default=None, max_length=CUDA_CHARS, examples=["cu124"])


class OptionsBody(IntakeModel):
    prereleases: bool = False
    as_of: datetime | None = None


class LockBody(IntakeModel):
    """`requirements` and `constraints` are requirements.in text, or a list of lines."""

    requirements: str | list[str] = Field(max_length=1_000_000, examples=["torch==2.5.1\nnumpy\n"])
    constraints: str | list[str] = ""
    target: TargetBody
    options: OptionsBody = OptionsBody()


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
