"""Today's generation on the fixture index: the shape of each variant's torch 2.14 builds (labels, tags,
CUDA 12 / CUDA 13 / ROCm / XPU packaging) and the platform-edge projects. uv resolving them is in
``test_fixture_generation_oracle.py``."""

from __future__ import annotations

import io
import re
import zipfile

import httpx
import pytest
from packaging.requirements import Requirement

from fixtures.build import load_snapshot, stray_numpy_version
from fixtures.generation import GENERATION_VARIANTS, INDEX_VARIANTS
from fixtures.index import PEP691_JSON, FixtureIndex


def _metadata(index: FixtureIndex, variant: str, filename: str) -> list[Requirement]:
    text = httpx.get(f"{index.variant_url(variant)}{filename.replace('+', '%2B')}.metadata").text
    return [
        Requirement(line.removeprefix("Requires-Dist: "))
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ")
    ]


def _page(index: FixtureIndex, variant: str, project: str) -> list[str]:
    text = httpx.get(index.variant_url(variant) + project + "/").text
    return re.findall(r">([^<]+\.(?:whl|tar\.gz))</a>", text)


# --- shape ---------------------------------------------------------------------------------------


def test_every_variant_index_serves_torch(fixture_index: FixtureIndex) -> None:
    assert set(GENERATION_VARIANTS) <= set(INDEX_VARIANTS)
    for variant in INDEX_VARIANTS:
        assert _page(fixture_index, variant, "torch"), variant
    with pytest.raises(ValueError, match="unknown variant"):
        fixture_index.variant_url("cu999")


def test_variant_builds_carry_labels_and_todays_tags(fixture_index: FixtureIndex) -> None:
    cu130 = _page(fixture_index, "cu130", "torch")
    assert {f for f in cu130 if f.startswith("torch-2.14.0+cu130-cp314-cp314t-")} == {
        "torch-2.14.0+cu130-cp314-cp314t-manylinux_2_28_x86_64.whl",
        "torch-2.14.0+cu130-cp314-cp314t-manylinux_2_28_aarch64.whl",
        "torch-2.14.0+cu130-cp314-cp314t-win_amd64.whl",
    }
    page = httpx.get(fixture_index.variant_url("cu130") + "torch/").text
    assert page.count("#sha256=") == len(cu130) == page.count("data-dist-info-metadata=")
    rocm = _page(fixture_index, "rocm6.4", "torch")
    assert rocm and all(
        re.fullmatch(r"torch-2\.14\.0\+rocm6\.4-cp3\d+-cp3\d+t?-manylinux_2_28_x86_64\.whl", f) for f in rocm
    )
    assert {f.rsplit("-", 1)[1] for f in _page(fixture_index, "xpu", "torch")} == {
        "manylinux_2_28_x86_64.whl",
        "win_amd64.whl",
    }
    cpu = _page(fixture_index, "cpu", "torch")
    assert "torch-2.14.0-cp312-cp312-macosx_14_0_arm64.whl" in cpu  # macOS builds carry no label
    assert (
        "torch-2.14.0+cpu-cp312-cp312-win_arm64.whl" in cpu
        and "torch-2.14.0+cpu-cp311-cp311-win_arm64.whl" not in cpu
    )
    assert "torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl" in cpu  # the 2024 generation stays
    assert {f.split("-")[1] for f in _page(fixture_index, "cu129", "torch")} == {"2.8.0+cu129"}
    assert f"numpy-{stray_numpy_version(load_snapshot())}-cp311" in " ".join(
        _page(fixture_index, "cu132", "numpy")
    )


def test_pypi_torch_2_14_as_really_published(fixture_index: FixtureIndex) -> None:
    page = httpx.get(fixture_index.pypi_url + "torch/", headers={"Accept": PEP691_JSON}).json()
    files = {f["filename"]: f for f in page["files"] if "-2.14.0-" in f["filename"]}
    assert len(files) == 24 and all(
        f["requires-python"] == ">=3.10" and not f["core-metadata"] for f in files.values()
    )
    free_threaded = "torch-2.14.0-cp314-cp314t-"
    assert {name.removeprefix(free_threaded) for name in files if name.startswith(free_threaded)} == {
        "manylinux_2_28_x86_64.whl",
        "manylinux_2_28_aarch64.whl",
        "macosx_14_0_arm64.whl",
        "win_amd64.whl",
    }
    wheel = fixture_index.content("torch-2.14.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        metadata = archive.read("torch-2.14.0.dist-info/METADATA").decode()
    assert (
        'Requires-Dist: cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3; platform_system == "Linux"'
        in metadata
    )
    assert "-cu12" not in metadata
    toolkit = [
        f["filename"]
        for f in httpx.get(fixture_index.pypi_url + "cuda-toolkit/", headers={"Accept": PEP691_JSON}).json()[
            "files"
        ]
    ]
    assert "cuda_toolkit-13.0.3.0-py2.py3-none-any.whl" in toolkit  # == 13.0.3 under PEP 440, not as a string


def test_cuda13_builds_pull_unsuffixed_nvidia_through_cuda_toolkit(fixture_index: FixtureIndex) -> None:
    torch = _metadata(fixture_index, "cu130", "torch-2.14.0+cu130-cp312-cp312-manylinux_2_28_x86_64.whl")
    names = {r.name: r for r in torch}
    assert (
        names["cuda-toolkit"].extras >= {"cublas", "cudart", "nvjitlink"}
        and str(names["cuda-toolkit"].specifier) == "==13.0.2"
    )
    assert {"nvidia-cudnn-cu13", "nvidia-nccl-cu13", "cuda-bindings", "triton"} <= names.keys()
    assert not [n for n in names if n.endswith(("-cu12", "-cu11"))]
    toolkit = httpx.get(
        fixture_index.url + "/files/pypi/cuda-toolkit/cuda_toolkit-13.0.2-py2.py3-none-any.whl.metadata"
    ).text
    assert (
        "Requires-Dist: nvidia-cublas==13.1.0.3.*; (sys_platform == 'linux' or sys_platform == 'win32') and extra == 'cublas'"
        in toolkit
    )
    assert "-cu1" not in toolkit
    cu132 = {
        r.name: r
        for r in _metadata(
            fixture_index, "cu132", "torch-2.14.0+cu132-cp312-cp312-manylinux_2_28_aarch64.whl"
        )
    }
    assert str(cu132["cuda-toolkit"].specifier) == "==13.2.1"
    # The index mirrors the runtime packages with PyPI's very bytes.
    mirrored = fixture_index.file("nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl", index="cu130")
    assert (
        mirrored.sha256
        == fixture_index.file("nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl").sha256
    )


def test_cuda12_rocm_and_xpu_builds(fixture_index: FixtureIndex) -> None:
    cu126 = {
        r.name: r
        for r in _metadata(fixture_index, "cu126", "torch-2.14.0+cu126-cp312-cp312-manylinux_2_28_x86_64.whl")
    }
    assert (
        str(cu126["nvidia-cuda-runtime-cu12"].specifier) == "==12.6.77"
        and str(cu126["nvidia-cuda-runtime-cu12"].marker) == 'platform_system == "Linux"'
    )
    assert "cuda-toolkit" not in cu126
    cu129 = {
        r.name: r
        for r in _metadata(fixture_index, "cu129", "torch-2.8.0+cu129-cp39-cp39-manylinux_2_28_x86_64.whl")
    }
    assert (
        str(cu129["nvidia-cuda-runtime-cu12"].specifier) == "==12.9.79"
        and str(cu129["triton"].specifier) == "==3.4.0"
    )
    rocm = _metadata(fixture_index, "rocm7.0", "torch-2.14.0+rocm7.0-cp313-cp313-manylinux_2_28_x86_64.whl")
    assert [str(r) for r in rocm if "triton" in r.name] == [
        'pytorch-triton-rocm==3.8.0; platform_system == "Linux"'
    ]
    assert not [r for r in rocm if r.name.startswith(("nvidia-", "cuda-"))]
    assert _page(fixture_index, "rocm7.0", "pytorch-triton-rocm")[0].endswith("-linux_x86_64.whl")
    xpu = {r.name for r in _metadata(fixture_index, "xpu", "torch-2.14.0+xpu-cp312-cp312-win_amd64.whl")}
    assert {"intel-cmplr-lib-rt", "intel-sycl-rt", "pytorch-triton-xpu"} <= xpu and not [
        n for n in xpu if n.startswith(("nvidia-", "cuda-"))
    ]


def test_platform_edge_projects(fixture_index: FixtureIndex) -> None:
    def tags(project: str) -> set[str]:
        return {
            a.filename.split("-", 2)[2] for a in fixture_index.files(project) if a.filename.endswith(".whl")
        }

    assert tags("lockd-fx-glibc234") == {
        "cp311-abi3-manylinux_2_34_x86_64.whl",
        "cp311-abi3-manylinux_2_34_aarch64.whl",
    }
    assert tags("lockd-fx-musl") == {
        "py3-none-musllinux_1_2_x86_64.whl",
        "py3-none-musllinux_1_2_aarch64.whl",
    }
    free = tags("lockd-fx-freethreaded")
    for wanted in (
        "cp314-cp314t-musllinux_1_2_x86_64.whl",
        "cp315-cp315-win_arm64.whl",
        "cp313-cp313t-macosx_10_13_x86_64.whl",
    ):
        assert any(tag.endswith(wanted) for tag in free), wanted
    markupsafe = {a.filename for a in fixture_index.files("markupsafe")}
    assert (
        "markupsafe-3.0.4-cp314-cp314t-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
        in markupsafe
    )
