"""lockd as a user installs it: the wheel carries the migrations, and `pip install .` into a clean
venv gives a `lockd migrate` and a `lockd serve` that work from a directory outside the checkout.

Builds run on a copy of what an sdist holds, so the checkout gets no build/ or *.egg-info. The
clean venv gets lockd's hashed runtime lock and hashed build lock (setuptools, so the install
runs with --no-build-isolation and downloads nothing unpinned), as `make serve` does. The first
run downloads the lock from PyPI; pip's cache serves the later ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from lockd.store import head_revision
from tests.support import ROOT, free_port, wait_until

# What setup.py and pyproject.toml build from; an sdist holds these too.
_SOURCES = ("pyproject.toml", "setup.py", "README.md", "lockd", "migrations")
_PYPI = "https://pypi.org/simple/pip/"


def _env(**extra: str) -> dict[str, str]:
    """The environment without this checkout or the machine's pip configuration in it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "LOCKD_")) and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    env.update(PIP_CONFIG_FILE="/dev/null", PIP_FIND_LINKS="", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def _run(
    command: list[str | Path], *, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command],
        check=False,
        cwd=cwd,
        env=_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{command} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


def _source_copy(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in _SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    return source


def _pypi_unreachable() -> str | None:
    try:
        httpx.get(_PYPI, timeout=5.0, follow_redirects=True).raise_for_status()
    except httpx.HTTPError as exc:
        return f"{_PYPI} is unreachable ({type(exc).__name__}) and pip's cache lacks lockd's lock"
    return None


def test_the_wheel_built_from_the_sdist_carries_every_migration(tmp_path: Path) -> None:
    source, dist = _source_copy(tmp_path), tmp_path / "dist"
    build_sdist = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    sdist = dist / _run([sys.executable, "-c", build_sdist, dist], cwd=source).stdout.split()[-1]
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    _run([*pip_wheel, "--wheel-dir", dist, sdist], cwd=tmp_path)
    (wheel,) = dist.glob("lockd-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    migrations = ROOT / "migrations"
    shipped = {
        "lockd/migrations/" + path.relative_to(migrations).as_posix()
        for path in migrations.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"lockd/migrations/env.py", "lockd/migrations/script.py.mako"} <= shipped
    assert any(name.startswith("lockd/migrations/versions/0001") for name in shipped)
    assert shipped <= names, sorted(shipped - names)
    assert not any(name.startswith("migrations/") for name in names), (
        "migrations/ must not be a top-level package"
    )
    assert "lockd/http/templates/dashboard.html" in names and "lockd/py.typed" in names


def test_the_runtime_lock_is_compiled_from_the_packages_dependencies() -> None:
    """`requirements/runtime.in` (what `make lock` hashes) says what pyproject.toml's dependencies say."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "requirements" / "runtime.in").read_text().splitlines()
    compiled = [line for line in map(str.strip, lines) if line and not line.startswith("#")]
    assert sorted(map(str, map(Requirement, declared))) == sorted(map(str, map(Requirement, compiled)))


@pytest.mark.slow
@pytest.mark.network
def test_pip_install_into_a_clean_venv_migrates_and_serves_outside_the_checkout(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python, pip = (
        venv / "bin" / "python",
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")],
    )
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    locks: list[str | Path] = [
        "-r",
        ROOT / "requirements" / "runtime.txt",
        "-r",
        ROOT / "requirements" / "build.txt",
    ]
    try:
        _run([*pip, "install", "--quiet", "--require-hashes", "--no-deps", *locks], cwd=tmp_path, timeout=900)
    except AssertionError:
        reason = _pypi_unreachable()
        if reason is not None:
            pytest.skip(reason)
        raise
    _run(
        [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", _source_copy(tmp_path)],
        cwd=tmp_path,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = "import lockd, lockd.store; print(lockd.__file__); print(lockd.store.migrations_dir())"
    package, migrations = _run([python, "-c", where], cwd=elsewhere).stdout.split()
    site_packages = (venv / "lib").resolve()
    assert Path(package).resolve().is_relative_to(site_packages), package
    assert Path(migrations).resolve().is_relative_to(site_packages), migrations
    # The hashed runtime lock carries isal where it has wheels: big tar sdists inflate with it.
    inflater = _run([python, "-c", "import lockd.tar_stream as t; print(t.INFLATER)"], cwd=elsewhere)
    assert inflater.stdout.strip() == "isal"

    database = {"LOCKD_DATABASE_URL": f"sqlite:///{elsewhere / 'lockd.db'}"}
    head = head_revision()
    migrated = _run([venv / "bin" / "lockd", "migrate"], cwd=elsewhere, env=database)
    assert f"database at revision {head}" in migrated.stderr

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(venv / "bin" / "lockd"), "serve", "--port", str(port)],
            cwd=elsewhere,
            env=_env(**database),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers(path: str) -> httpx.Response | None:
            assert server.poll() is None, (
                f"lockd serve exited:\n{log_path.read_text(errors='replace')[-3000:]}"
            )
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0)
            except httpx.TransportError:
                return None

        health = wait_until(
            lambda: answers("/healthz"), 60, lambda: log_path.read_text(errors="replace")[-3000:]
        )
        assert health is not None and health.status_code == 200
        ready = answers("/readyz")
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["schema"] == ready.json()["head"] == head
    finally:
        server.terminate()
        server.wait(timeout=30)
