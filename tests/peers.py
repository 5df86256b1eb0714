"""Other tools as oracles: uv pip compile, pip-compile, and pip installing/downloading a lock.

Every tool runs with the machine's pip/uv configuration shut out (PIP_CONFIG_FILE=/dev/null,
no find-links, UV_NO_CONFIG, a private uv cache) so it sees exactly the indexes lockd sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from lockd.lock import Lock
from lockd.render.requirements_txt import render_requirements_txt
from lockd.target import Target

__all__ = [
    "ROOT",
    "PeerFailed",
    "UvIndexes",
    "clean_env",
    "free_threaded_interpreter",
    "parse_pins",
    "pip_compile",
    "pip_download_lock",
    "pip_dry_run_lock",
    "pip_install_lock",
    "uv_compile",
]

ROOT = Path(__file__).resolve().parent.parent
# The tools of the environment running the tests (a worktree has no .venv of its own).
BIN = Path(sys.executable).parent
_TORCH_FAMILY = ("torch", "torchvision", "torchaudio", "triton", "pytorch-triton-rocm", "pytorch-triton-xpu")


class PeerFailed(AssertionError):
    """A peer tool failed; carries its stderr for the test report."""


@dataclass(frozen=True, slots=True)
class UvIndexes:
    pypi_url: str
    variant_url: str | None = None


def clean_env(
    tmp_path: Path, target: Target | None = None, *, uv_cache: Path | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        PIP_FIND_LINKS="",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_CACHE_DIR=str(uv_cache or tmp_path / "uv-cache"),
    )
    if target is not None and target.platform.sys_platform == "darwin":
        env["MACOSX_DEPLOYMENT_TARGET"] = str(target.level)  # how uv is told the macOS minimum
    return env


_REPORTS_FREE_THREADED = """\
import sysconfig

_config_var = sysconfig.get_config_var


def get_config_var(name):
    return 1 if name == "Py_GIL_DISABLED" else _config_var(name)


sysconfig.get_config_var = get_config_var
"""


def free_threaded_interpreter(tmp_path: Path) -> Path:
    """An interpreter uv takes for a free-threaded build: uv reads no flag for it, only this.

    uv computes a target's ABI tag (`cp314t`) from the interpreter it is given; this machine has
    no free-threaded CPython, so a venv whose `sitecustomize` reports `Py_GIL_DISABLED = 1`
    stands in (uv's `--python-version` and `--python-platform` set everything else).
    """
    venv = tmp_path / "free-threaded"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        (venv / "lib" / version / "site-packages" / "sitecustomize.py").write_text(_REPORTS_FREE_THREADED)
    return python


def parse_pins(requirements_txt: str) -> dict[str, str]:
    # pip-compile keeps the extras of top-level lines: `uvicorn[standard]==0.34.0`.
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?:\[[^\]]*\])?==(\S+)", requirements_txt, re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise PeerFailed(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join('"' + item.replace('"', '\\"') + '"' for item in items) + "]"


def _lines(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def uv_compile(
    requirements: str,
    target: Target,
    indexes: UvIndexes,
    tmp_path: Path,
    *,
    constraints: str = "",
    prereleases: bool = False,
    exclude_newer: datetime | None = None,
    uv_cache: Path | None = None,
    previous: str | None = None,
    upgrade_packages: tuple[str, ...] = (),
) -> dict[str, str]:
    """`uv pip compile` for the target; with a variant URL, the torch family on an explicit index.

    Routing needs a pyproject (`[tool.uv.sources]`), which uv must build to read; without a
    variant a plain requirements.in is compiled. Share `uv_cache` between calls to keep that fast.
    `previous`: an existing output file, whose pins uv keeps unless `upgrade_packages` names them.
    """
    project = tmp_path / f"uv-{len(list(tmp_path.glob('uv-*')))}"
    project.mkdir(parents=True)
    if indexes.variant_url is None:
        source = "requirements.in"
        (project / source).write_text("\n".join(_lines(requirements)) + "\n")
    else:
        source = "pyproject.toml"
        text = f'[project]\nname = "lockd-peer"\nversion = "0"\ndependencies = {_toml_list(_lines(requirements))}\n\n'
        text += f'[[tool.uv.index]]\nname = "pytorch"\nurl = "{indexes.variant_url}"\nexplicit = true\n\n'
        text += "[tool.uv.sources]\n" + "".join(
            f'{name} = {{ index = "pytorch" }}\n' for name in _TORCH_FAMILY
        )
        (project / source).write_text(text)
    if target.uv_platform is None:
        raise PeerFailed(f"uv has no --python-platform for {target.describe()}")
    # Any interpreter will do (the target is given below); without one uv hunts the machine for a
    # matching Python, which costs seconds per call. Only free threading comes from it.
    python = free_threaded_interpreter(tmp_path) if target.free_threaded else Path(sys.executable)
    command = [
        str(BIN / "uv"),
        "pip",
        "compile",
        source,
        "--default-index",
        indexes.pypi_url,
        "--python-platform",
        target.uv_platform,
        "--python-version",
        str(target.python),
        "--generate-hashes",
        "--python",
        str(python),
        "--no-header",
        "--quiet",
    ]
    if constraints:
        # Not [tool.uv] constraint-dependencies: UV_NO_CONFIG makes uv ignore [tool.uv] settings.
        (project / "constraints.txt").write_text(constraints)
        command += ["--constraint", "constraints.txt"]
    if prereleases:
        command += ["--prerelease", "allow"]
    if exclude_newer is not None:
        command += ["--exclude-newer", exclude_newer.isoformat()]
    for package in upgrade_packages:
        command += ["--upgrade-package", package]
    if previous is not None:
        (project / "requirements.txt").write_text(previous)
        command += ["--output-file", "requirements.txt"]
        _run(command, cwd=project, env=clean_env(tmp_path, target, uv_cache=uv_cache))
        return parse_pins((project / "requirements.txt").read_text())
    return parse_pins(_run(command, cwd=project, env=clean_env(tmp_path, target, uv_cache=uv_cache)))


def pip_compile(
    requirements: str,
    pypi_url: str,
    tmp_path: Path,
    *,
    constraints: str = "",
    prereleases: bool = False,
    previous: str | None = None,
    upgrade_packages: tuple[str, ...] = (),
) -> dict[str, str]:
    """pip-compile on the host (its target is the running interpreter and machine).

    `previous`: an existing requirements.txt, whose pins pip-compile keeps where it can, except
    those `upgrade_packages` names.
    """
    work = tmp_path / f"pip-compile-{len(list(tmp_path.glob('pip-compile-*')))}"
    work.mkdir(parents=True)
    if previous is not None:
        (work / "requirements.txt").write_text(previous)
    body = requirements
    if constraints:
        (work / "constraints.txt").write_text(constraints)
        body = "-c constraints.txt\n" + body
    (work / "requirements.in").write_text(body)
    command = [
        str(BIN / "pip-compile"),
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--allow-unsafe",
        "--index-url",
        pypi_url,
        "--cache-dir",
        str(tmp_path / "pip-cache"),
        "--output-file",
        "requirements.txt",
        "requirements.in",
    ]
    if prereleases:
        command.append("--pre")
    for package in upgrade_packages:
        command += ["--upgrade-package", package]
    _run(command, cwd=work, env=clean_env(tmp_path))
    return parse_pins((work / "requirements.txt").read_text())


def _write_lock(lock: Lock, path: Path) -> Path:
    path.write_text(render_requirements_txt(lock))
    return path


def pip_install_lock(lock: Lock, tmp_path: Path) -> None:
    """`pip install --require-hashes --no-deps` of the rendered lock into a fresh venv (host target)."""
    requirements = _write_lock(lock, tmp_path / "requirements.txt")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    _run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
            "--require-hashes", "--no-deps", "--no-cache-dir", "-r", str(requirements),
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path),
    )  # fmt: skip


def _installs_at_level(filename: str, target: Target) -> bool:
    if not filename.endswith(".whl"):
        return False
    return target.wheel_rank(parse_wheel_filename(filename)[3]) is not None


def pip_download_lock(lock: Lock, tmp_path: Path) -> list[str]:
    """`pip download --require-hashes --no-deps --only-binary=:all:` for the lock's target.

    Returns the downloaded file names. Packages with no wheel for the target's own level (only an
    sdist there, whatever newer levels have) cannot be checked this way (pip refuses sdists with
    --platform) and are left out of the file.
    """
    target = lock.target
    wheels_only = [p for p in lock.packages if any(_installs_at_level(f.filename, target) for f in p.files)]
    trimmed = Lock.build(
        input_digest=lock.input_digest,
        target=lock.target,
        plan=lock.plan,
        requirements=lock.requirements,
        constraints=lock.constraints,
        options=lock.options,
        packages=wheels_only,
    )
    requirements = _write_lock(trimmed, tmp_path / "requirements.txt")
    dest = tmp_path / "downloads"
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps",
        "--only-binary=:all:", "--python-version", f"{target.python.major}.{target.python.minor}",
        "--implementation", "cp", "--abi", target.abi,
        "--no-cache-dir", "-d", str(dest), "-r", str(requirements),
    ]  # fmt: skip
    for platform_tag in target.platform_tags:
        command += ["--platform", platform_tag]
    _run(command, cwd=tmp_path, env=clean_env(tmp_path))
    return sorted(p.name for p in dest.iterdir())


def pip_dry_run_lock(lock: Lock, tmp_path: Path) -> list[str]:
    """`pip install --dry-run --require-hashes --no-deps --only-binary=:all:` for the lock's target.

    What `pip_download_lock` checks, without downloading: pip reads each wheel's METADATA by HTTP
    range requests (`fast-deps`), so a lock with GPU wheels costs megabytes, not gigabytes.
    Returns the file names pip would install; packages without a wheel at the target's own level
    are left out, as there.
    """
    target = lock.target
    wheels_only = [p for p in lock.packages if any(_installs_at_level(f.filename, target) for f in p.files)]
    trimmed = Lock.build(
        input_digest=lock.input_digest,
        target=lock.target,
        plan=lock.plan,
        requirements=lock.requirements,
        constraints=lock.constraints,
        options=lock.options,
        packages=wheels_only,
    )
    requirements = _write_lock(trimmed, tmp_path / "requirements.txt")
    report = tmp_path / "pip-report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--require-hashes",
        "--no-deps", "--only-binary=:all:", "--use-feature=fast-deps", "--no-cache-dir",
        "--python-version", f"{target.python.major}.{target.python.minor}", "--implementation", "cp",
        "--abi", target.abi, "--report", str(report), "-r", str(requirements),
    ]  # fmt: skip
    for platform_tag in target.platform_tags:
        command += ["--platform", platform_tag]
    _run(command, cwd=tmp_path, env=clean_env(tmp_path), timeout=900)
    installed = json.loads(report.read_text())["install"]
    return sorted(str(item["download_info"]["url"]).rsplit("/", 1)[-1] for item in installed)
