"""The tools lockd is measured against: ``uv pip compile`` and ``pip-compile``, run as subprocesses.

Both run with the machine's pip configuration switched off (``PIP_CONFIG_FILE=/dev/null``, empty
``PIP_FIND_LINKS``, ``UV_NO_CONFIG=1``) so they read exactly the index lockd reads. Cold means an
empty cache directory, warm a cache directory a previous run filled.

Torch-family routing for uv uses an explicit index in a throwaway ``pyproject.toml`` (the recipe
``tests/test_fixture_index.py`` proves): torch, torchvision, torchaudio and triton are pinned to the
PyTorch index, every other project comes from the default index. pip-compile cannot
route per project; on the fixture index it gets the variant index as an extra index (how people use
it with torch), on real PyPI it gets PyPI alone (PyPI's Linux torch 2.5.1 *is* the cu124 build).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from bench.cases import Case, IndexSetup
from bench.timing import Unavailable
from lockd.target import PLATFORMS

__all__ = ["UV_ROUTED", "answer", "count_pins", "peer_env", "pip_compile", "uv_compile", "venv_tool"]

VENV_BIN = Path(sys.executable).parent  # the venv the bench runs in (also under --lockd-rev)
# What lockd routes for the fixture's variants; uv honours sources for these even when transitive.
UV_ROUTED = ("torch", "torchvision", "torchaudio", "triton")
PEER_TIMEOUT = 900.0
# The interpreter uv is handed, as a real file: given none, uv looks for one on PATH, and on a
# machine whose PATH starts with pyenv's shims it ran the shim (bash, then pyenv's dozen scripts)
# in every run, timed: about 100 ms a run. uv pip compile --offline of pypi-25 took 120-160 ms
# that way and 20 ms with the interpreter named, which is the footing the uv figures
# (40 ms) were taken on. lockd's own runs start this interpreter directly, so uv does too.
PEER_PYTHON = Path(os.path.realpath(sys.executable))


def venv_tool(name: str) -> Path:
    """A command from the project venv, or `Unavailable`."""
    path = VENV_BIN / name
    if path.exists():
        return path
    found = shutil.which(name)
    if found is None:
        raise Unavailable(f"{name} is not installed (looked in {VENV_BIN} and PATH)")
    return Path(found)


def peer_env(cache_dir: Path | None = None) -> dict[str, str]:
    """The environment without the machine's extra indexes; uv and pip caches under ``cache_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "LOCKD_"))}
    env["PIP_CONFIG_FILE"] = "/dev/null"
    env["PIP_FIND_LINKS"] = ""
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    # uv would try to download a managed CPython for a --python-version the host lacks (unreachable
    # here: ~10 s of retries inside every timed run); resolution needs no interpreter.
    env["UV_PYTHON_DOWNLOADS"] = "never"
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    if cache_dir is not None:
        env["UV_CACHE_DIR"] = str(cache_dir)
    return env


def count_pins(requirements_txt: str) -> int:
    return sum(1 for line in requirements_txt.splitlines() if "==" in line and line[:1].isalnum())


_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def answer(requirements_txt: str) -> dict[str, Any]:
    """The pin count, and a digest of the pins (names normalised, sorted): two tools' timings
    compare only where they found the same answer (pip and uv can part on valid answers)."""
    pins = sorted(
        f"{canonicalize_name(m.group(1))}=={m.group(2)}"
        for line in requirements_txt.splitlines()
        if (m := _PIN.match(line))
    )
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    return {"pins": count_pins(requirements_txt), "answer": digest}


def _uv_pyproject(case: Case, index: IndexSetup) -> str:
    assert case.cuda is not None
    deps = ", ".join(f'"{req}"' for req in case.parsed())
    lines = [
        "[project]",
        'name = "lockd-bench-case"',
        'version = "0"',
        'requires-python = ">=3.9"',
        f"dependencies = [{deps}]",
        "",
        "[[tool.uv.index]]",
        'name = "pytorch"',
        f'url = "{index.variant_url(case.cuda)}"',
        "explicit = true",
        "",
        "[tool.uv.sources]",
    ]
    for name in UV_ROUTED:
        lines.append(f'{name} = {{ index = "pytorch" }}')
    return "\n".join(lines) + "\n"


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=PEER_TIMEOUT, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise RuntimeError(f"{Path(argv[0]).name} exited {done.returncode}: {tail}")
    return done


def uv_compile(
    case: Case, index: IndexSetup, workdir: Path, cache_dir: Path, *, offline: bool = False
) -> dict[str, Any]:
    """One ``uv pip compile --generate-hashes`` for the case's target; returns the pin count.

    ``offline``: ``--offline``, everything from ``cache_dir`` (the fully cached footing)."""
    uv = venv_tool("uv")
    workdir.mkdir(parents=True, exist_ok=True)
    if case.cuda is not None:
        source = workdir / "pyproject.toml"
        source.write_text(_uv_pyproject(case, index))
    else:
        source = workdir / "requirements.in"
        source.write_text(case.requirements)
    out = workdir / "uv.txt"
    # An output file already there is read as preferences (pip-compile's rule), which a lockd run
    # never has: every run resolves from nothing.
    out.unlink(missing_ok=True)
    platform = _uv_platform(case.platform)
    argv = [
        str(uv), "pip", "compile", source.name,
        "--python", str(PEER_PYTHON),
        "--default-index", index.pypi_url,
        "--generate-hashes",
        "--python-platform", platform,
        "--python-version", case.python,
        "--no-header", "--quiet",
        "-o", str(out),
    ]  # fmt: skip
    if offline:
        argv.append("--offline")
    _run(argv, peer_env(cache_dir), workdir)
    return answer(out.read_text())


def pip_compile(case: Case, index: IndexSetup, workdir: Path, cache_dir: Path) -> dict[str, Any]:
    """One ``pip-compile --generate-hashes`` on the host target (Linux x86_64, this Python)."""
    if not case.is_host_target:
        raise Unavailable(
            f"pip-compile resolves for the host only (linux_x86_64, 3.11), not {case.platform} {case.python}"
        )
    tool = venv_tool("pip-compile")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "requirements.in").write_text(case.requirements)
    out = workdir / "pip.txt"
    argv = [
        str(tool), "--generate-hashes", "--no-header", "--quiet",
        "--cache-dir", str(cache_dir),
        "--index-url", index.pypi_url,
        "-o", str(out), "requirements.in",
    ]  # fmt: skip
    if case.cuda is not None and index.pypi_is_fixture:
        argv[1:1] = ["--extra-index-url", index.variant_url(case.cuda)]
    env = peer_env()
    env["PIP_CACHE_DIR"] = str(cache_dir)
    _run(argv, env, workdir)
    return {"pins": count_pins(out.read_text())}


def _uv_platform(platform: str) -> str:
    """The target's ``--python-platform`` from lockd's table (the one place it is defined)."""
    return PLATFORMS[platform].uv_platform
