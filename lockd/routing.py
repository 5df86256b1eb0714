"""Which index serves which project, for a target's accelerator variant.

With a variant, the torch family comes **only** from `<pytorch-base>/<variant>/` and every
other project **only** from the default index, with no fallback either way. That strictness
is the dependency-confusion defence (the torchtriton incident of December 2022) and what
keeps a CPU torch out of a GPU image. Without a variant, everything comes from the default
index. The family list and both URLs are configuration; this module only applies them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name

from lockd.accelerator import TORCH_FAMILY, current_table
from lockd.errors import InvalidRequest
from lockd.target import Target

__all__ = ["DEFAULT_INDEX_URL", "DEFAULT_PYTORCH_BASE", "IndexPlan", "plan_for"]

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
DEFAULT_PYTORCH_BASE = "https://download.pytorch.org/whl"


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexPlan:
    """The index of every project for one target. Part of the input digest.

    Without an accelerator index nothing is routed by family, so such a plan holds no family:
    that keeps `from_json(plan.to_json()) == plan` for every plan.
    """

    default_url: str
    accelerator_url: str | None
    family: frozenset[NormalizedName]

    def __post_init__(self) -> None:
        if self.accelerator_url is None and self.family:
            object.__setattr__(self, "family", frozenset())

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
        """The canonical form that enters the input digest."""
        return {
            "default": self.default_url,
            "accelerator": self.accelerator_url,
            "family": sorted(self.family),
        }

    @classmethod
    def from_json(cls, data: object) -> IndexPlan:
        """The plan whose `to_json()` is exactly `data`; anything else raises `InvalidRequest`."""
        if not isinstance(data, Mapping) or set(data) != _JSON_FIELDS:
            raise _malformed(
                "an index plan is an object with exactly the fields default, accelerator and family", data
            )
        default, accelerator, family = data["default"], data["accelerator"], data["family"]
        if not isinstance(default, str) or not default:
            raise _malformed("the default index must be a URL", default)
        if accelerator is not None and (not isinstance(accelerator, str) or not accelerator):
            raise _malformed("the accelerator index must be a URL or null", accelerator)
        if not isinstance(family, list) or not all(isinstance(name, str) for name in family):
            raise _malformed("the torch family must be a list of project names", family)
        plan = cls(
            default_url=default,
            accelerator_url=accelerator,
            family=frozenset(canonicalize_name(name) for name in family),
        )
        if plan.to_json() != dict(data):
            raise _malformed("the index plan is not in canonical form", data)
        return plan


_JSON_FIELDS = frozenset({"default", "accelerator", "family"})


def _malformed(message: str, value: object) -> InvalidRequest:
    return InvalidRequest(message, context={"field": "indexes", "value": repr(value)[:200]})


def plan_for(
    target: Target,
    *,
    default_url: str = DEFAULT_INDEX_URL,
    pytorch_base: str = DEFAULT_PYTORCH_BASE,
    family: Iterable[str] = TORCH_FAMILY,
) -> IndexPlan:
    """The plan for `target`: its variant's index under `pytorch_base` serves `family`.

    The accelerator table may add projects for a kind (XPU builds pull `pytorch-triton-xpu`);
    a kind that adds none leaves the family, and so the digest of its inputs, as configured.
    """
    accelerator = None
    routed = frozenset(canonicalize_name(name) for name in family)
    if target.variant is not None:
        accelerator = _with_slash(pytorch_base.rstrip("/") + "/" + target.variant.index_path)
        routed |= current_table().family_for(target.variant.kind)
    return IndexPlan(default_url=_with_slash(default_url), accelerator_url=accelerator, family=routed)
