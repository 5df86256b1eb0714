"""`lockd.routing`: the torch family only from the accelerator index, everything else only from the default."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from lockd.accelerator import TORCH_FAMILY, VARIANTS
from lockd.errors import InvalidRequest, LockdError
from lockd.routing import DEFAULT_INDEX_URL, IndexPlan, plan_for
from lockd.target import PLATFORMS, Target

CUDA = Target.of("linux_x86_64", "3.11", "cu124")


@pytest.mark.parametrize(
    "name", ["torch", "torchvision", "torchaudio", "triton", "pytorch-triton", "xformers", "Torch_Vision"]
)
def test_torch_family_only_from_the_variant_index(name: str) -> None:
    plan = plan_for(CUDA, pytorch_base="https://download.pytorch.org/whl/")
    project = canonicalize_name(name)
    if project in TORCH_FAMILY:
        assert plan.index_for(project) == "https://download.pytorch.org/whl/cu124/"
        assert plan.is_accelerated(project)
    else:
        assert plan.index_for(project) == DEFAULT_INDEX_URL  # "torch_vision" is not torchvision


@pytest.mark.parametrize(
    "name", ["numpy", "markupsafe", "pillow", "nvidia-cuda-runtime-cu12", "torchtriton", "filelock"]
)
def test_everything_else_only_from_the_default_index(name: str) -> None:
    # numpy and MarkupSafe have stray copies on the PyTorch index; torchtriton is the 2022 attack name
    plan = plan_for(CUDA)
    assert plan.index_for(canonicalize_name(name)) == DEFAULT_INDEX_URL
    assert not plan.is_accelerated(canonicalize_name(name))


def test_without_a_variant_everything_comes_from_the_default_index() -> None:
    plan = plan_for(Target.of("macos_arm64", "3.12"), default_url="http://127.0.0.1:9/simple")
    assert plan.accelerator_url is None
    assert plan.urls == ("http://127.0.0.1:9/simple/",)
    for name in ("torch", "triton", "numpy"):
        assert plan.index_for(canonicalize_name(name)) == "http://127.0.0.1:9/simple/"
    assert plan.to_json() == {"default": "http://127.0.0.1:9/simple/", "accelerator": None, "family": []}


def test_cpu_is_a_variant_with_its_own_index() -> None:
    plan = plan_for(Target.of("linux_aarch64", "3.12", "cpu"), pytorch_base="http://127.0.0.1:1/whl")
    assert plan.accelerator_url == "http://127.0.0.1:1/whl/cpu/"
    assert plan.urls == (DEFAULT_INDEX_URL, "http://127.0.0.1:1/whl/cpu/")


def test_family_is_configuration_and_normalised() -> None:
    plan = plan_for(CUDA, family=["Torch", "Flash_Attn"])
    assert plan.index_for(canonicalize_name("flash-attn")) == plan.accelerator_url
    assert plan.index_for(canonicalize_name("torchvision")) == DEFAULT_INDEX_URL
    assert plan.to_json()["family"] == ["flash-attn", "torch"]


def test_plans_differ_when_anything_that_routes_differs() -> None:
    base = plan_for(CUDA).to_json()
    assert plan_for(Target.of("linux_x86_64", "3.11", "cu121")).to_json() != base
    assert plan_for(CUDA, default_url="https://mirror/simple/").to_json() != base
    assert plan_for(CUDA, family=["torch"]).to_json() != base
    assert plan_for(Target.of("linux_x86_64", "3.12", "cu124")).to_json() == base  # Python does not route


# --- the JSON round trip -------------------------------------------------------------------

SHIPPED_TARGETS = [
    Target.of(name, "3.11", variant)
    for name, platform in PLATFORMS.items()
    for variant in (None, *VARIANTS)
    if variant is None or VARIANTS[variant].kind in platform.accelerators
]
URLS = ["https://pypi.org/simple/", "https://mirror.example.org/pypi/simple", "http://127.0.0.1:8080/simple/"]
BASES = ["https://download.pytorch.org/whl", "https://download.pytorch.org/whl/", "http://127.0.0.1:8080/whl"]
FAMILY_NAMES = [*sorted(TORCH_FAMILY), "Flash_Attn", "vllm", "Torch.Vision"]

plans = st.builds(
    lambda target, default, base, family: plan_for(
        target, default_url=default, pytorch_base=base, family=family
    ),
    st.sampled_from(SHIPPED_TARGETS),
    st.sampled_from(URLS),
    st.sampled_from(BASES),
    st.lists(st.sampled_from(FAMILY_NAMES), max_size=6) | st.just(sorted(TORCH_FAMILY)),
)


@pytest.mark.parametrize("target", SHIPPED_TARGETS, ids=lambda t: t.describe())
def test_every_shipped_plan_round_trips_exactly(target: Target) -> None:
    plan = plan_for(target)
    assert IndexPlan.from_json(plan.to_json()) == plan
    assert IndexPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_plan_without_an_accelerator_index_holds_no_family() -> None:
    # Its JSON never listed one, so reading it back used to give a plan unequal to the original.
    plan = plan_for(Target.of("linux_x86_64", "3.11"), family=["torch"])
    assert plan.family == frozenset()
    assert IndexPlan.from_json(plan.to_json()) == plan


@settings(max_examples=50)
@given(plans)
def test_configured_plans_round_trip(plan: IndexPlan) -> None:
    again = IndexPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan and again.to_json() == plan.to_json()


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "https://pypi.org/simple/",
        {"default": "https://pypi.org/simple/", "accelerator": None},
        {"default": "https://pypi.org/simple/", "accelerator": None, "family": [], "extra": 1},
        {"default": None, "accelerator": None, "family": []},
        {"default": "", "accelerator": None, "family": []},
        {"default": "https://pypi.org/simple/", "accelerator": 1, "family": []},
        {"default": "https://pypi.org/simple/", "accelerator": "", "family": []},
        {"default": "https://pypi.org/simple/", "accelerator": None, "family": "torch"},
        {"default": "https://pypi.org/simple/", "accelerator": None, "family": [1]},
        {"default": "https://pypi.org/simple/", "accelerator": None, "family": ["torch"]},
        {
            "default": "https://pypi.org/simple/",
            "accelerator": "https://download.pytorch.org/whl/cu124/",
            "family": ["torchvision", "torch"],
        },
        {
            "default": "https://pypi.org/simple/",
            "accelerator": "https://download.pytorch.org/whl/cu124/",
            "family": ["torch", "torch"],
        },
        {
            "default": "https://pypi.org/simple/",
            "accelerator": "https://download.pytorch.org/whl/cu124/",
            "family": ["Torch"],
        },
    ],
)
def test_from_json_rejects_what_to_json_never_gives(data: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        IndexPlan.from_json(data)
    assert info.value.code == "invalid-request"
    assert info.value.context["field"] == "indexes"


@settings(max_examples=50)
@given(
    plans,
    st.sampled_from(["default", "accelerator", "family", "extra"]),
    st.none() | st.text(max_size=8) | st.lists(st.sampled_from(FAMILY_NAMES), max_size=3),
)
def test_from_json_takes_only_exactly_what_to_json_gives(plan: IndexPlan, key: str, value: object) -> None:
    data = dict(plan.to_json())
    data[key] = value
    try:
        again = IndexPlan.from_json(data)
    except LockdError as error:
        assert isinstance(error, InvalidRequest)
    else:
        assert again.to_json() == data
