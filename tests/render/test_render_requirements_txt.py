"""`render_requirements_txt`: pip-compile's format, and files pip really installs with hashes.

The install checks build tiny real wheels, serve them from two PEP 503 indexes on loopback (a
PyPI-shaped `/simple/` and a PyTorch-shaped `/whl/cu124/` that also carries a tampered copy of a
PyPI project), render a lock of them and run pip against the rendered file. One venv serves the
module: creating venvs is the slow part.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.render.requirements_txt import equivalent_command, render_requirements_txt
from lockd.routing import plan_for
from lockd.target import Target

PIP_ENV = {
    **os.environ,
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_FIND_LINKS": "",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_NO_INPUT": "1",
}


def test_pip_compile_layout(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    lines = render_requirements_txt(lock).splitlines()
    header = [line for line in lines if line.startswith("#")]
    assert f"#    {equivalent_command(lock, 'requirements.txt')}" in header
    body = lines[lines.index("") + 1 :]
    pins = [line.split(" ")[0] for line in body if not line.startswith(" ")]
    assert pins == [p.pin for p in lock.packages]
    assert pins == sorted(pins)
    for package in lock.packages:
        start = body.index(f"{package.pin} \\")
        hashes = body[start + 1 : start + 1 + len(package.files)]
        assert [h.strip().rstrip(" \\") for h in hashes] == sorted(
            f"--hash=sha256:{f.sha256}" for f in package.files
        )
        assert hashes[-1].endswith(max(f.sha256 for f in package.files))


def test_index_lines_name_the_accelerator_index_only_when_the_lock_uses_it(
    sample_lock: tuple[str, Lock],
) -> None:
    _, lock = sample_lock
    lines = render_requirements_txt(lock).splitlines()
    assert f"--index-url {lock.plan.default_url}" in lines
    extra = [line for line in lines if line.startswith("--extra-index-url")]
    uses_accelerator = any(p.index == lock.plan.accelerator_url for p in lock.packages)
    assert extra == ([f"--extra-index-url {lock.plan.accelerator_url}"] if uses_accelerator else [])


def test_via_annotations_follow_pip_compile(sample_lock: tuple[str, Lock]) -> None:
    name, lock = sample_lock
    text = render_requirements_txt(lock)
    if name == "cuda":
        assert "torchvision==0.20.1+cu124 \\\n" in text
        assert "    # via -r requirements.in\n" in text
        assert "    # via\n    #   -r requirements.in\n    #   torchvision\n" in text
        assert "--cuda cu124 -c constraints.txt --format requirements.txt" in text
    if name == "host":
        # pip and setuptools are pinned with hashes in the same list, as with --allow-unsafe
        assert "\npip==24.3.1 \\\n" in text and "\nsetuptools==75.6.0 \\\n" in text
        assert "considered to be unsafe" not in text
        assert (
            "--pre --as-of 2024-12-01T00:00:00+00:00 --index-url https://mirror.example.org/pypi/simple/"
            in text
        )


def test_nothing_but_the_lock_decides_the_bytes(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    assert render_requirements_txt(lock) == render_requirements_txt(Lock.from_json(lock.canonical_bytes()))


# --- real installs -----------------------------------------------------------------------


def _wheel(name: str, version: str, tag: str, payload: str) -> tuple[str, bytes]:
    """A minimal valid wheel whose module `<name>` has `PAYLOAD = payload`."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}"
    files = {
        f"{module}/__init__.py": f"PAYLOAD = {payload!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nGenerator: lockd-tests\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    record = [
        f"{path},sha256={_b64(hashlib.sha256(body.encode()).digest())},{len(body)}"
        for path, body in files.items()
    ]
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, body in files.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            archive.writestr(info, body)
    return f"{dist}-{tag}.whl", buffer.getvalue()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TinyIndex:
    """Two PEP 503 indexes on one loopback server: /simple/ and /whl/<variant>/."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.pages: dict[str, list[tuple[str, str]]] = {}

    def add(self, index: str, project: str, filename: str, data: bytes) -> LockedFile:
        directory = self.root / index / project
        directory.mkdir(parents=True, exist_ok=True)
        (directory / filename).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        href = filename.replace("+", "%2B")
        links = self.pages.setdefault(f"{index}/{project}", [])
        links.append((href, sha))
        body = "".join(f'<a href="{h}#sha256={s}">{h}</a>\n' for h, s in links)
        (directory / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{body}</body></html>\n")
        return LockedFile(filename, f"{self.url}/{index}/{project}/{href}", sha, len(data), "wheel")


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyIndex]:
    root = tmp_path_factory.mktemp("tiny-index")
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TinyIndex(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv")
    venv.create(path, with_pip=False)  # pip comes from the test runner: `pip --python`
    return path / "bin" / "python"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        check=False,
        env=PIP_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _package(name: str, version: str, index: str, files: list[LockedFile], via: list[str]) -> LockedPackage:
    return LockedPackage(canonicalize_name(name), Version(version), index, tuple(files), (), tuple(via))


@pytest.fixture(scope="module")
def cuda_like_lock(tiny_index: TinyIndex) -> Lock:
    target = Target.of("linux_x86_64", "3.11", "cu124")
    plan = plan_for(target, default_url=f"{tiny_index.url}/simple/", pytorch_base=f"{tiny_index.url}/whl")
    assert plan.accelerator_url == f"{tiny_index.url}/whl/cu124/"
    torch = tiny_index.add(
        "whl/cu124", "torch", *_wheel("torch", "2.5.1+cu124", "py3-none-any", "cu124 build")
    )
    good = tiny_index.add(
        "simple", "lockd-tiny-common", *_wheel("lockd-tiny-common", "1.0", "py3-none-any", "from pypi")
    )
    # The accelerator index carries a different file under the same name: the stray copy
    # routing forbids. pip sees both indexes; only the hash keeps the stray out.
    tiny_index.add(
        "whl/cu124", "lockd-tiny-common", *_wheel("lockd-tiny-common", "1.0", "py3-none-any", "stray")
    )
    dep = [
        tiny_index.add("simple", "lockd-tiny-dep", *_wheel("lockd-tiny-dep", "2.0", "py3-none-any", "dep")),
        tiny_index.add(
            "simple", "lockd-tiny-dep", *_wheel("lockd-tiny-dep", "2.0", "cp27-none-win32", "never")
        ),
    ]
    return Lock.build(
        input_digest="a" * 64,
        target=target,
        plan=plan,
        requirements=["torch==2.5.1", "lockd-tiny-common"],
        constraints=[],
        options=LockOptions(),
        packages=[
            _package("torch", "2.5.1+cu124", plan.accelerator_url, [torch], [ROOT]),
            _package("lockd-tiny-common", "1.0", plan.default_url, [good], [ROOT, "torch"]),
            _package("lockd-tiny-dep", "2.0", plan.default_url, dep, ["lockd-tiny-common"]),
        ],
    )


def test_rendered_lock_installs_with_require_hashes_from_both_indexes(
    cuda_like_lock: Lock, fresh_venv: Path, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(render_requirements_txt(cuda_like_lock))
    result = _pip(
        "--python", str(fresh_venv), "install", "--require-hashes", "--no-deps", "-r", str(requirements)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    probe = subprocess.run(
        [
            str(fresh_venv),
            "-c",
            "import importlib.metadata as m, torch, lockd_tiny_common as c, lockd_tiny_dep as d;"
            "print(m.version('torch'), torch.PAYLOAD, c.PAYLOAD, d.PAYLOAD, sep='|')",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "2.5.1+cu124|cu124 build|from pypi|dep"


def test_a_wrong_hash_makes_pip_refuse(cuda_like_lock: Lock, fresh_venv: Path, tmp_path: Path) -> None:
    package = cuda_like_lock.package("lockd-tiny-dep")
    assert package is not None
    wrong = LockedPackage(
        package.name,
        package.version,
        package.index,
        tuple(LockedFile(f.filename, f.url, "0" * 64, f.size, f.kind) for f in package.files),
        package.dependencies,
        package.via,
    )
    lock = Lock.build(
        input_digest=cuda_like_lock.input_digest,
        target=cuda_like_lock.target,
        plan=cuda_like_lock.plan,
        requirements=cuda_like_lock.requirements,
        constraints=(),
        options=cuda_like_lock.options,
        packages=[wrong],
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(render_requirements_txt(lock))
    result = _pip(
        "--python",
        str(fresh_venv),
        "install",
        "--force-reinstall",
        "--require-hashes",
        "--no-deps",
        "-r",
        str(requirements),
    )
    assert result.returncode != 0
    assert "hash" in (result.stdout + result.stderr).lower()


def test_a_lock_for_another_target_downloads_with_pip_platform_flags(
    tiny_index: TinyIndex, tmp_path: Path
) -> None:
    target = Target.of("windows_amd64", "3.9")
    plan = plan_for(target, default_url=f"{tiny_index.url}/simple/")
    win = tiny_index.add(
        "simple", "lockd-tiny-win", *_wheel("lockd-tiny-win", "3.1", "cp39-cp39-win_amd64", "win")
    )
    lock = Lock.build(
        input_digest="b" * 64,
        target=target,
        plan=plan,
        requirements=["lockd-tiny-win"],
        constraints=[],
        options=LockOptions(),
        packages=[_package("lockd-tiny-win", "3.1", plan.default_url, [win], [ROOT])],
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(render_requirements_txt(lock))
    result = _pip(
        "download", "--require-hashes", "--no-deps", "--only-binary=:all:",
        "--platform", "win_amd64", "--python-version", "3.9", "--implementation", "cp",
        "-d", str(tmp_path / "dl"), "-r", str(requirements),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [win.filename]
