"""Pydantic models of the HTTP API (pydantic lives only at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lockd.http.name_models import ProposalOut
from lockd.limits import CUDA_CHARS, PLATFORM_CHARS, PYTHON_CHARS
from lockd.render import FILE_NAMES

__all__ = [
    "AcceleratorInfo",
    "BundleInfo",
    "DifferenceInfo",
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
    platform: str = Field(
        max_length=PLATFORM_CHARS,
        examples=["linux_x86_64"],
        description="linux_x86_64, linux_aarch64, macos_arm64, macos_x86_64, windows_amd64, windows_arm64;"
        " uv's --python-platform names and conda subdirs are aliases",
    )
    python: str = Field(
        max_length=PYTHON_CHARS, examples=["3.11"], description="3.9 to 3.15; 3.11.7; 3.14t for free-threaded"
    )
    cuda: str | None = Field(
        default=None,
        max_length=CUDA_CHARS,
        examples=["cu128"],
        description="cpu, cu118 … cu132, rocm6.x/7.x, xpu, or auto with driver",
    )
    glibc: str | None = Field(
        default=None, examples=["2.34"], description="Linux: 2.17 … 2.41 (default 2.28)"
    )
    musl: str | None = Field(default=None, examples=["1.2"], description="Linux on musl: 1.1 or 1.2")
    macos: str | None = Field(default=None, examples=["14.0"], description="macOS minimum (default 13.0)")
    driver: str | None = Field(
        default=None, examples=["580.65.06"], description="with cuda=auto: NVIDIA driver, or rocm<version>"
    )


class OptionsBody(IntakeModel):
    prereleases: bool = False
    as_of: datetime | None = None
    only_binary: bool = False


class LockBody(IntakeModel):
    """`requirements` and `constraints` are requirements.in text, or a list of lines."""

    requirements: str | list[str] = Field(max_length=1_000_000, examples=["torch==2.5.1\nnumpy\n"])
    constraints: str | list[str] = ""
    target: TargetBody | None
    targets: list[TargetBody] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="several targets: each locked, the first one's pins preferred by the others",
    )
    options: OptionsBody = OptionsBody()
    # Configured private indexes, by name only: index URLs are configuration, never input.
    indexes: list[str] = []
    name: str | None = Field(default=None, max_length=200, examples=["vision/trainer-cu128"])
    upgrade: str | None = Field(
        default=None, max_length=10_000, description="`all`, or packages to upgrade: a,b"
    )

    @model_validator(mode="before")
    @classmethod
    def _target_or_targets(cls, data: object) -> object:
        # `target` is required unless `targets` is given, so a body with neither says
        # "body.target: Field required", as it did before `targets` existed.
        if isinstance(data, dict) and "targets" in data and "target" not in data:
            return {**data, "target": None}
        return data

    @model_validator(mode="after")
    def _one_target_field(self) -> LockBody:
        if self.target is not None and self.targets is not None:
            raise ValueError("give either target or targets, not both")
        if self.target is None and self.targets is None:
            raise ValueError("give a target (or targets for several)")
        return self


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


class AcceleratorInfo(BaseModel):
    """Which accelerator builds the lock holds, and how that was decided."""

    variant: str | None  # None: no variant, the torch family from the default index
    chosen_by: Literal["request", "auto"] | None
    driver: str | None = None
    reason: str | None = None  # how cuda=auto chose
    runtime: str | None = None  # without a variant: the GPU runtime the lock pulls, e.g. from PyPI


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
    name: str | None = None
    links: LockLinks
    accelerator: AcceleratorInfo | None = None  # set in the answer to a lock request


class DifferenceInfo(BaseModel):
    """A package the targets of a bundle do not pin alike."""

    name: str
    versions: dict[str, str | None]  # target → version (None: not in that target's lock)
    reason: str


class BundleInfo(BaseModel):
    """The answer to several targets: each one's lock, and where their versions differ."""

    locks: list[LockInfo]
    differences: list[DifferenceInfo]


class RefreshInfo(BaseModel):
    input_digest: str
    changed: bool = Field(description="whether what the input serves changed (the policy promoted)")
    previous_revision: int
    revision: int
    lock_digest: str
    previous_lock_digest: str
    proposal: ProposalOut | None = Field(default=None, description="the lock the index gives now, for review")
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
