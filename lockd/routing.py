"""Which index serves which project, for a target's accelerator variant.

With a variant, the torch family comes **only** from `<pytorch-base>/<variant>/` and every
other project **only** from the default index, with no fallback either way. That strictness
is the dependency-confusion defence (the torchtriton incident of December 2022) and what
keeps a CPU torch out of a GPU image. Without a variant, everything comes from the default
index. The family list and both URLs are configuration; this module only applies them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name

from lockd.target import Target

__all__ = ["DEFAULT_INDEX_URL", "DEFAULT_PYTORCH_BASE", "TORCH_FAMILY", "IndexPlan", "plan_for"]

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
DEFAULT_PYTORCH_BASE = "https://download.pytorch.org/whl"

TORCH_FAMILY: frozenset[NormalizedName] = frozenset(
    canonicalize_name(name)
    for name in (
        "torch",
        "torchvision",
        "torchaudio",
        "triton",
        "pytorch-triton",
        "pytorch-triton-rocm",
        "xformers",
        "torchtext",
        "torchdata",
        "fbgemm-gpu",
    )
)


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The index of every project for one target. Part of the input digest."""

    default_url: str
    accelerator_url: str | None
    family: frozenset[NormalizedName]

    def index_for(self, name: NormalizedName) -> str:
        if self.accelerator_url is not None and name in self.family:
            return self.accelerator_url
        return self.default_url

    def is_accelerated(self, name: NormalizedName) -> bool:
        return self.accelerator_url is not None and name in self.family

    @property
    def urls(self) -> tuple[str, ...]:
        """Every index this plan may read, default first."""
        if self.accelerator_url is None:
            return (self.default_url,)
        return (self.default_url, self.accelerator_url)

    def to_json(self) -> dict[str, object]:
        return {
            "default": self.default_url,
            "accelerator": self.accelerator_url,
            "family": sorted(self.family) if self.accelerator_url is not None else [],
        }


def plan_for(
    target: Target,
    *,
    default_url: str = DEFAULT_INDEX_URL,
    pytorch_base: str = DEFAULT_PYTORCH_BASE,
    family: Iterable[str] = TORCH_FAMILY,
) -> IndexPlan:
    accelerator = None
    if target.variant is not None:
        accelerator = _with_slash(pytorch_base.rstrip("/") + "/" + target.variant.name)
    return IndexPlan(
        default_url=_with_slash(default_url),
        accelerator_url=accelerator,
        family=frozenset(canonicalize_name(name) for name in family),
    )
