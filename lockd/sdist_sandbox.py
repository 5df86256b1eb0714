"""An sdist's PEP 517 metadata hook, run in a bubblewrap sandbox, never in lockd's own process.

Only when the operator sets `LOCKD_SDIST_METADATA=sandbox`, and only after static PKG-INFO and
egg-info gave nothing (`lockd.sdist_sources`). The sdist is unpacked as data (tar's `data`
filter: no links out, no devices) into a fresh directory; its build requirements (from
`pyproject.toml`, else setuptools' legacy backend) are resolved by lockd itself as wheels only,
downloaded, checked against their sha256 and unzipped beside it. Then
`prepare_metadata_for_build_wheel` runs under `bwrap`: the system read-only, its own /tmp
(tmpfs), no network and no other namespace shared (`--unshare-all`), an empty environment,
and CPU, memory, file-size and wall-clock limits. What it prints is the METADATA; anything
else is `SdistNeedsBuild`. The index client caches the answer by the sdist's sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lockd.errors import LockdError, SdistNeedsBuild
from lockd.simple import DistFile

__all__ = ["BuildWheel", "SandboxLimits", "SandboxedMetadataBuilder"]

_LEGACY_BACKEND = ("setuptools.build_meta:__legacy__", ["setuptools>=40.8.0"])
_MAX_METADATA = 1024 * 1024
# Runs inside the sandbox: the backend's metadata hook, METADATA to stdout. Nothing else is printed.
_RUNNER = """
import importlib, os, sys
sys.path[:0] = [os.path.abspath(p) for p in sys.argv[2].split(os.pathsep) if p] + ["/build/deps", os.getcwd()]
module, _, attr = sys.argv[1].partition(":")
backend = importlib.import_module(module)
for part in filter(None, attr.split(".")):
    backend = getattr(backend, part)
out = "/tmp/metadata"
os.makedirs(out)
sys.stdout = sys.stderr
name = backend.prepare_metadata_for_build_wheel(out, {})
sys.stdout = sys.__stdout__
sys.stdout.write(open(os.path.join(out, name, "METADATA"), encoding="utf-8").read())
"""

# One wheel a build needs: (file name, sha256 as lockd resolved it, its bytes, checked against it)
BuildWheel = tuple[str, str, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxLimits:
    seconds: float = 60.0  # wall clock
    cpu_seconds: int = 60
    memory_bytes: int = 1024 * 1024 * 1024
    file_bytes: int = 256 * 1024 * 1024  # any one file the build writes
    unpacked_bytes: int = 256 * 1024 * 1024  # the sdist unpacked


class SandboxedMetadataBuilder:
    """A `lockd.sdist_sources.MetadataBuilder` that runs the hook under bubblewrap."""

    def __init__(
        self,
        build_requirements: Callable[[Sequence[str]], list[BuildWheel]],
        *,
        limits: SandboxLimits | None = None,
        bwrap: str = "/usr/bin/bwrap",
    ) -> None:
        self._build_requirements = build_requirements
        self._limits = limits or SandboxLimits()
        self._bwrap = bwrap

    def __call__(self, file: DistFile, archive: IO[bytes]) -> bytes:
        with tempfile.TemporaryDirectory(prefix="lockd-sandbox-") as work:
            root = Path(work)
            source = _unpack(file, archive, root / "src", self._limits.unpacked_bytes)
            backend, requires, backend_path = _build_system(source)
            deps = root / "deps"
            deps.mkdir()
            try:
                wheels = self._build_requirements(requires)
            except LockdError as exc:
                raise _refused(file, f"its build requirements did not resolve: {exc.message}") from None
            for filename, sha256, data in wheels:
                _unzip_wheel(filename, sha256, data, deps)
            return self._run(file, root, source.relative_to(root / "src"), backend, backend_path)

    def _run(self, file: DistFile, root: Path, project: Path, backend: str, backend_path: list[str]) -> bytes:
        limits = self._limits
        interpreter = Path(sys.base_prefix)
        command = [
            self._bwrap, "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
            "--ro-bind", str(root / "deps"), "/build/deps", "--bind", str(root / "src"), "/build/src",
            "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin", "--setenv", "HOME", "/tmp", "--chdir", f"/build/src/{project}",
        ]  # fmt: skip
        if not interpreter.is_relative_to("/usr"):
            command[1:1] = ["--ro-bind", str(interpreter), str(interpreter)]
        command += [
            str(interpreter / "bin" / "python3"),
            "-I",
            "-c",
            _RUNNER,
            backend,
            os.pathsep.join(backend_path),
        ]

        def limit() -> None:  # in the child, before bwrap starts
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))

        try:
            done = subprocess.run(
                command, capture_output=True, timeout=limits.seconds, preexec_fn=limit, check=False, env={}
            )
        except subprocess.TimeoutExpired:
            raise _refused(file, f"its metadata hook ran past {limits.seconds:g} s") from None
        except OSError as exc:
            raise _refused(file, f"the sandbox could not start ({exc.strerror})") from None
        if done.returncode != 0 or not done.stdout.strip():
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise _refused(file, f"its metadata hook failed in the sandbox: {tail[0][:300]}")
        return done.stdout[:_MAX_METADATA]


def _refused(file: DistFile, reason: str) -> SdistNeedsBuild:
    return SdistNeedsBuild(
        f"{file.name} {file.version}: {reason}",
        hint="pin a version that has wheels for the target, or describe it in LOCKD_METADATA_OVERRIDES",
        context={"project": file.name, "version": str(file.version), "filename": file.filename},
    )


def _unpack(file: DistFile, archive: IO[bytes], into: Path, max_bytes: int) -> Path:
    """The sdist unpacked as data only; returns its top directory."""
    into.mkdir()
    try:
        if file.filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                if sum(i.file_size for i in zipped.infolist()) > max_bytes:
                    raise _refused(file, "it unpacks to more than the sandbox allows")
                for info in zipped.infolist():
                    target = (into / info.filename).resolve()
                    if not target.is_relative_to(into.resolve()):
                        raise _refused(file, f"its member {info.filename!r} points outside the archive")
                zipped.extractall(into)
        else:
            with tarfile.open(fileobj=archive, mode="r:*") as tarred:
                members = tarred.getmembers()
                if sum(m.size for m in members) > max_bytes:
                    raise _refused(file, "it unpacks to more than the sandbox allows")
                tarred.extractall(into, members=members, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _refused(file, f"it is not an archive the sandbox can unpack ({exc})") from None
    tops = [p for p in into.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else into


def _build_system(source: Path) -> tuple[str, list[str], list[str]]:
    """(backend, requirements, backend-path) from pyproject.toml, else setuptools' legacy backend."""
    legacy: tuple[str, list[str], list[str]] = (_LEGACY_BACKEND[0], list(_LEGACY_BACKEND[1]), [])
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return legacy
    try:
        system = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("build-system", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return legacy
    backend = system.get("build-backend") or _LEGACY_BACKEND[0]
    requires = system.get("requires", _LEGACY_BACKEND[1])
    # PEP 517 in-tree backends: only paths inside the project.
    paths = [str(p) for p in system.get("backend-path", []) if ".." not in Path(str(p)).parts]
    return str(backend), [str(r) for r in requires], paths


def _unzip_wheel(filename: str, sha256: str, data: bytes, into: Path) -> None:
    if hashlib.sha256(data).hexdigest() != sha256.lower():
        raise SdistNeedsBuild(f"the build requirement {filename} does not match its sha256")
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        for info in zipped.infolist():
            if not (into / info.filename).resolve().is_relative_to(into.resolve()):
                raise SdistNeedsBuild(f"the build requirement {filename} has a member outside itself")
        zipped.extractall(into)
