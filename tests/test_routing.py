"""`lockd.routing`: the torch family only from the accelerator index, everything else only from the default."""

from __future__ import annotations

import pytest
from packaging.utils import canonicalize_name

from lockd.accelerator import TORCH_FAMILY
from lockd.routing import DEFAULT_INDEX_URL, plan_for
from lockd.target import Target

CUDA = Target.of("linux_x86_64", "3.11", "cu124")


@pytest.mark.parametrize("name", ["torch", "torchvision", "torchaudio", "triton", "pytorch-triton", "xformers", "Torch_Vision"])
def test_torch_family_only_from_the_variant_index(name: str) -> None:
    plan = plan_for(CUDA, pytorch_base="https://download.pytorch.org/whl/")
    project = canonicalize_name(name)
    if project in TORCH_FAMILY:
        assert plan.index_for(project) == "https://download.pytorch.org/whl/cu124/"
        assert plan.is_accelerated(project)
    else:
        assert plan.index_for(project) == DEFAULT_INDEX_URL  # "torch_vision" is not torchvision


@pytest.mark.parametrize("name", ["numpy", "markupsafe", "pillow", "nvidia-cuda-runtime-cu12", "torchtriton", "filelock"])
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
