"""The fixture index is faithful: negotiation, hashes, ranges, PyTorch quirks, mutations, and real
resolvers (uv, pip) resolving and installing from it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement

from fixtures.build import PYPI, FileSpec, Release, build_file, load_snapshot, stray_numpy_version
from fixtures.index import PEP691_JSON
from fixtures.served_index import ControlledIndex, ServedIndex, WatchedIndex
from fixtures.variants import cuda_pins

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv" / "bin" / "uv"


def _clean_env(tmp_path: Path) -> dict[str, str]:
    # The machine's pip.conf, find-links and uv config point at local indexes that must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
    )
    return env


# --- the PyPI-shaped side ----------------------------------------------------------------------


def test_json_and_html_by_content_negotiation(fixture_index: WatchedIndex) -> None:
    url = fixture_index.pypi_url + "requests/"
    html = httpx.get(url)
    assert html.headers["content-type"] == "text/html"
    assert "<a href=" in html.text and "data-core-metadata" in html.text
    as_json = httpx.get(url, headers={"Accept": f"{PEP691_JSON}, text/html;q=0.1"})
    assert as_json.headers["content-type"] == PEP691_JSON
    page = as_json.json()
    assert page["meta"]["api-version"] == "1.1"
    assert page["versions"] and all(
        {"size", "upload-time", "yanked", "hashes"} <= f.keys() for f in page["files"]
    )
    preferred_html = httpx.get(url, headers={"Accept": f"{PEP691_JSON};q=0.2, text/html"})
    assert preferred_html.headers["content-type"] == "text/html"
    assert httpx.get(url, headers={"Accept": "image/png"}).status_code == 406


def test_non_normalized_names_redirect(fixture_index: WatchedIndex) -> None:
    response = httpx.get(fixture_index.pypi_url + "MarkupSafe/")
    assert response.status_code == 301
    assert response.headers["location"] == "/simple/markupsafe/"
    assert httpx.get(fixture_index.pypi_url + "Typing_Extensions", follow_redirects=True).status_code == 200


def test_served_bytes_match_advertised_hashes_and_sizes(fixture_index: WatchedIndex) -> None:
    page = httpx.get(fixture_index.pypi_url + "idna/", headers={"Accept": PEP691_JSON}).json()
    for file in page["files"]:
        body = httpx.get(file["url"]).content
        assert hashlib.sha256(body).hexdigest() == file["hashes"]["sha256"]
        assert len(body) == file["size"]
        if file["core-metadata"]:
            metadata = httpx.get(file["url"] + ".metadata").content
            assert hashlib.sha256(metadata).hexdigest() == file["core-metadata"]["sha256"]


def test_torch_on_pypi_advertises_no_pep658_and_carries_real_cuda_pins(fixture_index: WatchedIndex) -> None:
    page = httpx.get(fixture_index.pypi_url + "torch/", headers={"Accept": PEP691_JSON}).json()
    assert not any(f["core-metadata"] for f in page["files"])
    wheel = next(f for f in page["files"] if f["filename"] == "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl")
    assert httpx.get(wheel["url"] + ".metadata").status_code == 404
    with zipfile.ZipFile(io.BytesIO(httpx.get(wheel["url"]).content)) as archive:
        metadata = archive.read("torch-2.5.1.dist-info/METADATA").decode()
        assert archive.testzip() is None
    assert 'nvidia-cuda-runtime-cu12 (==12.4.127) ; platform_system == "Linux"' in metadata
    assert wheel["size"] > 4 * 1024 * 1024  # padded so a whole download is visible in the counters


def test_range_requests(fixture_index: WatchedIndex) -> None:
    url = fixture_index.url + "/files/pypi/torch/torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"
    head = httpx.head(url)
    size = int(head.headers["content-length"])
    assert head.headers["accept-ranges"] == "bytes" and head.content == b""
    whole = fixture_index.content("torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl")
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    suffix = httpx.get(url, headers={"Range": "bytes=-22"})
    assert (
        suffix.status_code == 206
        and suffix.content == whole[-22:]
        and suffix.content.startswith(b"PK\x05\x06")
    )
    assert httpx.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416


def test_synthetic_projects_are_served(fixture_index: WatchedIndex) -> None:
    def files(name: str) -> list[dict[str, Any]]:
        return list(
            httpx.get(fixture_index.pypi_url + name + "/", headers={"Accept": PEP691_JSON}).json()["files"]
        )

    yanked = {f["filename"]: f["yanked"] for f in files("lockd-fx-yanked")}
    assert yanked["lockd_fx_yanked-1.1-py3-none-any.whl"] == "broken build, use 1.0"
    assert yanked["lockd_fx_yanked-1.0-py3-none-any.whl"] is False
    assert [f["filename"] for f in files("lockd-fx-sdist-dynamic")] == ["lockd_fx_sdist_dynamic-1.0.tar.gz"]
    assert {f["filename"].rsplit("-", 1)[1] for f in files("lockd-fx-winonly")} == {"win_amd64.whl"}
    metadata = fixture_index.file("lockd_fx_sdist_dynamic-1.0.tar.gz").metadata
    assert "Dynamic: Requires-Dist" in metadata and "Metadata-Version: 2.2" in metadata


# --- the PyTorch-shaped side ---------------------------------------------------------------------


def test_pytorch_index_is_html_only_with_one_hashless_link(fixture_index: WatchedIndex) -> None:
    response = httpx.get(fixture_index.variant_url("cu124") + "torchaudio/", headers={"Accept": PEP691_JSON})
    assert response.status_code == 200 and response.headers["content-type"] == "text/html"
    links = re.findall(r'<a href="([^"]+)"', response.text)
    hashless = [link for link in links if "#sha256=" not in link]
    assert hashless == ["/whl/cu124/torchaudio-2.5.1%2Bcu124-cp312-cp312-linux_x86_64.whl"]
    assert "data-dist-info-metadata=" in response.text


def test_pytorch_index_labels_metadata_and_strays(fixture_index: WatchedIndex) -> None:
    page = httpx.get(fixture_index.variant_url("cu121") + "torch/").text
    assert "torch-2.5.1+cu121-cp311-cp311-linux_x86_64.whl" in page
    cpu = httpx.get(fixture_index.variant_url("cpu") + "torch/").text
    assert "torch-2.5.1-cp311-none-macosx_11_0_arm64.whl" in cpu
    assert "torch-2.5.1-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl" in cpu
    vision = httpx.get(fixture_index.variant_url("cu124") + "torchvision/").text
    href = re.search(r'href="(/whl/cu124/torchvision-0\.20\.1%2Bcu124-cp311[^"#]+)#', vision)
    assert href is not None
    metadata = httpx.get(fixture_index.url + href[1] + ".metadata")
    assert metadata.status_code == 200 and "Requires-Dist: torch (==2.5.1)" in metadata.text
    strays = httpx.get(fixture_index.variant_url("cu124") + "numpy/").text
    assert f"numpy-{stray_numpy_version(load_snapshot())}-cp311" in strays
    markupsafe = fixture_index.files("markupsafe", index="cu124")[0]
    on_pypi = {a.filename.lower(): a.sha256 for a in fixture_index.files("markupsafe")}
    assert markupsafe.filename.startswith("MarkupSafe-")
    assert on_pypi[markupsafe.filename.lower()] != markupsafe.sha256


def test_variant_table_matches_pypi_capture() -> None:
    def key(line: str) -> tuple[str, str, str]:
        requirement = Requirement(line)
        return requirement.name, str(requirement.specifier), str(requirement.marker)

    snapshot = load_snapshot()["torch"]["versions"]
    for version, variant in (("2.4.1", "cu121"), ("2.5.1", "cu124")):
        captured = {key(line) for line in snapshot[version]["metadata"]["requires-dist"]}
        pinned = {key(line) for line in cuda_pins(version, variant)}
        assert pinned <= captured
        assert {k for k in captured if k[0].startswith("nvidia-") or k[0] == "triton"} == pinned


def test_builds_are_deterministic() -> None:
    release = Release(PYPI, "lockd-fx-det", "1.0", "2.1", ">=3.9", ("idna",), (), (), "synthetic")
    for filename in ("lockd_fx_det-1.0-py3-none-any.whl", "lockd_fx_det-1.0.tar.gz"):
        first, data = build_file(release, FileSpec(filename))
        second, again = build_file(release, FileSpec(filename))
        assert data == again and first.sha256 == second.sha256


# --- controls ------------------------------------------------------------------------------------


def test_mutations_change_what_is_served(mutable_index: ControlledIndex) -> None:
    index = mutable_index
    published = index.publish("lockd-fx-plain", "9.0", requires_dist=("idna",))
    page = httpx.get(index.pypi_url + "lockd-fx-plain/", headers={"Accept": PEP691_JSON}).json()
    assert "9.0" in page["versions"]
    assert httpx.get(f"{index.url}/files/pypi/lockd-fx-plain/{published[0].filename}").status_code == 200

    index.yank("lockd_fx_plain-1.0-py3-none-any.whl", "security")
    index.delete("lockd_fx_plain-1.0.tar.gz")
    old = index.file("lockd_fx_plain-1.1-py3-none-any.whl").sha256
    new = index.replace_content("lockd_fx_plain-1.1-py3-none-any.whl")
    files = {
        f["filename"]: f
        for f in httpx.get(index.pypi_url + "lockd-fx-plain/", headers={"Accept": PEP691_JSON}).json()[
            "files"
        ]
    }
    assert files["lockd_fx_plain-1.0-py3-none-any.whl"]["yanked"] == "security"
    assert "lockd_fx_plain-1.0.tar.gz" not in files
    assert files["lockd_fx_plain-1.1-py3-none-any.whl"]["hashes"]["sha256"] == new != old
    body = httpx.get(files["lockd_fx_plain-1.1-py3-none-any.whl"]["url"]).content
    assert hashlib.sha256(body).hexdigest() == new and zipfile.ZipFile(io.BytesIO(body)).testzip() is None

    # The same through HTTP, on a variant index: a file vanishes as the cudnn wheel did from cu124.
    gone = "torch-2.5.1+cu124-cp39-cp39-linux_x86_64.whl"
    assert (
        httpx.post(index.url + "/_control/delete", json={"filename": gone, "index": "cu124"}).status_code
        == 200
    )
    assert gone not in httpx.get(index.variant_url("cu124") + "torch/").text
    index.reset()
    assert gone in httpx.get(index.variant_url("cu124") + "torch/").text
    assert (
        "9.0"
        not in httpx.get(index.pypi_url + "lockd-fx-plain/", headers={"Accept": PEP691_JSON}).json()[
            "versions"
        ]
    )


def test_faults_latency_and_counters(mutable_index: ControlledIndex) -> None:
    index = mutable_index
    index.set_fault("500", count=1)
    assert httpx.get(index.pypi_url + "idna/").status_code == 500
    assert httpx.get(index.pypi_url + "idna/").status_code == 200
    httpx.post(index.url + "/_control/fault", json={"mode": "garbage"})
    with pytest.raises(ValueError):  # JSONDecodeError or UnicodeDecodeError, both ValueErrors
        json.loads(httpx.get(index.pypi_url + "idna/", headers={"Accept": PEP691_JSON}).content)
    index.set_fault("truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(index.pypi_url + "idna/")
    index.set_fault(None)
    index.set_latency(50)
    assert httpx.get(index.pypi_url + "idna/").elapsed.total_seconds() >= 0.05
    index.set_latency(0)
    index.reset_counters()
    url = index.url + "/files/pypi/torch/torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl"
    httpx.get(url, headers={"Range": "bytes=-100"})
    counters = httpx.get(index.url + "/_control/counters").json()
    assert counters["requests"] == {"range": 1} and counters["bytes"] == {"range": 100}
    httpx.get(url)
    assert index.counters().whole_downloads("torch-2.5.1") == 1
    # Last, because the hung handler finishes (and counts) after the client has given up.
    index.set_fault("hang", seconds=0.3)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(index.pypi_url + "idna/", timeout=0.1)


def test_basic_auth_requirement_answers_401_without_the_right_credentials(
    mutable_index: ControlledIndex,
) -> None:
    index = mutable_index
    index.require_auth("ci", "secret")
    httpx.post(index.url + "/_control/auth", json={"user": "torch-token", "path_prefix": "/whl/"})
    page = index.pypi_url + "idna/"
    refused = httpx.get(page)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(page, auth=("ci", "wrong")).status_code == 401
    assert httpx.get(page, auth=("ci", "secret")).status_code == 200
    # The longest prefix decides: the PyTorch side wants its token (a user with an empty password).
    assert httpx.get(index.variant_url("cu124") + "torch/", auth=("ci", "secret")).status_code == 401
    assert httpx.get(index.variant_url("cu124") + "torch/", auth=("torch-token", "")).status_code == 200
    assert httpx.get(index.url + "/_control/counters").status_code == 200  # controls never ask
    log = [(r.kind, r.status, r.user) for r in index.requests_log() if r.kind != "control"]
    assert log == [
        ("unauthorized", 401, None),
        ("unauthorized", 401, "ci"),
        ("page", 200, "ci"),
        ("unauthorized", 401, "ci"),
        ("page", 200, "torch-token"),
    ]
    index.reset()
    assert httpx.get(page).status_code == 200


# --- real resolvers and installers ---------------------------------------------------------------


def _uv_compile(index: ServedIndex, variant: str, tmp_path: Path) -> str:
    project = tmp_path / variant
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "fx-acceptance"\nversion = "0"\n'
        'dependencies = ["torch==2.5.1", "torchvision", "fastapi"]\n\n'
        f'[[tool.uv.index]]\nname = "pytorch"\nurl = "{index.variant_url(variant)}"\nexplicit = true\n\n'
        "[tool.uv.sources]\n"
        + "".join(
            f'{name} = {{ index = "pytorch" }}\n' for name in ("torch", "torchvision", "torchaudio", "triton")
        )
    )
    result = subprocess.run(
        [
            str(UV),
            "pip",
            "compile",
            "pyproject.toml",
            "--index-url",
            index.pypi_url,
            "--generate-hashes",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--python-version",
            "3.11",
            "--no-header",
            "--quiet",
        ],
        cwd=project,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _pins(requirements: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements, re.MULTILINE))


def test_uv_routes_torch_to_the_variant_index(fixture_index: WatchedIndex, tmp_path: Path) -> None:
    fixture_index.reset_counters()
    cu124 = _pins(_uv_compile(fixture_index, "cu124", tmp_path))
    assert cu124["torch"] == "2.5.1+cu124" and cu124["torchvision"] == "0.20.1+cu124"
    assert cu124["nvidia-cuda-runtime-cu12"] == "12.4.127" and cu124["nvidia-nvjitlink-cu12"] == "12.4.127"
    assert cu124["triton"] == "3.1.0" and "fastapi" in cu124
    # numpy comes from the PyPI side, not the newer stray copy on the PyTorch index.
    assert cu124["numpy"] != stray_numpy_version(load_snapshot())
    # torch 2.5.1 has no PEP 658 here: uv read its METADATA by range requests, never the whole 4 MB wheel.
    counters = fixture_index.counters()
    assert counters.whole_downloads("torch-") == 0
    assert any(name.startswith("torch-2.5.1+cu124-cp311") for name in counters.range_files)

    cu121 = _pins(_uv_compile(fixture_index, "cu121", tmp_path))
    assert cu121["torch"] == "2.5.1+cu121" and cu121["nvidia-cuda-runtime-cu12"] == "12.1.105"
    assert cu121["nvidia-cudnn-cu12"] == "9.1.0.70" and "nvidia-nvjitlink-cu12" in cu121  # via cusolver


def test_pip_resolves_and_hash_pinned_install_works(fixture_index: WatchedIndex, tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            "-",
            "--index-url",
            fixture_index.pypi_url,
            "fastapi",
            "requests",
            "lockd-fx-extras[all]",
            "lockd-fx-yanked",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    resolved = {item["metadata"]["name"].lower(): item for item in json.loads(report.stdout)["install"]}
    assert resolved["lockd-fx-yanked"]["metadata"]["version"] == "1.0"
    assert "lockd-fx-speedups" in resolved and "starlette" in resolved

    # A hash-pinned, fully resolved set installs with --require-hashes --no-deps into a fresh venv.
    lines = []
    for name in ("fastapi", "requests", "idna", "certifi", "urllib3", "charset-normalizer"):
        item = resolved[name]
        sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{name}=={item['metadata']['version']} --hash=sha256:{sha}")
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--index-url",
            fixture_index.pypi_url,
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import fastapi, requests; print(fastapi.__fixture_origin__, requests.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert probe.stdout.split()[0] == "pypi"


def test_server_runs_as_a_subprocess(fixture_index_process: ServedIndex) -> None:
    url = fixture_index_process.pypi_url
    assert httpx.get(url + "torch/").status_code == 200
