"""lockd's images under a real Docker engine: its own image, and an ML image built from a lock it serves.

A private dockerd (tests/docker_engine.py) builds from a local Debian base, since no registry is
reachable. The consumer flow runs the shell steps of api/examples/github-actions.yml themselves:
POST requirements.in to a real `python -m lockd serve` on loopback (resolving against the fixture
index), then `docker build` of api/examples/Dockerfile with the digest as build-arg; the image must
import what the lock pinned. A checksum that does not match the lock must fail the build.
Build times and image sizes are printed (run with -s to see them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fixtures.served_index import WatchedIndex
from tests.docker_engine import (
    BASE_IMAGE_TAG,
    DockerEngine,
    DockerUnavailable,
    build_local_base,
    private_docker_engine,
)

__all__: list[str] = []

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_IN = "# the consumer's requirements.in\ntorch==2.5.1\nrequests\n"
TARGET = "python=3.11&platform=linux_x86_64&cuda=cu124"
IMAGE_UID = "10001"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return int(response.status), response.read()


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if _get(url, timeout=2)[0] == 200:
                return
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {seconds:.0f}s: {last}")


def _timed_build(
    engine: DockerEngine, *args: str, check: bool = True
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = engine.run("build", "--network", "host", "--progress", "plain", *args, check=check, timeout=900)
    return time.monotonic() - started, done


def _image_size_mb(engine: DockerEngine, image: str) -> float:
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    try:
        with private_docker_engine() as running:
            yield running
    except DockerUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="module")
def base_image(engine: DockerEngine) -> str:
    started = time.monotonic()
    build_local_base(engine)
    print(
        f"\n[docker] local base {BASE_IMAGE_TAG}: {time.monotonic() - started:.1f}s, "
        f"{_image_size_mb(engine, BASE_IMAGE_TAG):.0f} MB"
    )
    return BASE_IMAGE_TAG


@dataclass(frozen=True, slots=True)
class LockdServer:
    url: str
    token: str


@pytest.fixture(scope="module")
def lockd(fixture_index: WatchedIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockdServer]:
    """A real `python -m lockd serve` on loopback, SQLite, resolving against the fixture index.

    Anonymous reads are off, so the consumer build can only fetch the lock if the BuildKit secret
    really carries the token into the RUN step.
    """
    if importlib.util.find_spec("lockd.cli") is None:
        pytest.fail("lockd.cli is missing: the consumer flow needs `python -m lockd serve`")
    state = tmp_path_factory.mktemp("lockd-server")
    env = {
        **os.environ,
        "LOCKD_DATABASE_URL": f"sqlite:///{state}/lockd.db",
        "LOCKD_INDEX_URL": fixture_index.pypi_url,
        "LOCKD_PYTORCH_INDEX_URL": fixture_index.pytorch_base,
        "LOCKD_ANONYMOUS_READ": "false",
    }
    subprocess.run([sys.executable, "-m", "lockd", "migrate"], env=env, cwd=ROOT, check=True, timeout=120)
    token = subprocess.run(
        [sys.executable, "-m", "lockd", "token", "create", "--scope", "lock", "--name", "docker-test"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    port = _free_port()
    log = (state / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "lockd", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/healthz", 60)
        yield LockdServer(url=url, token=token)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _workflow_scripts() -> dict[str, str]:
    workflow = yaml.safe_load((ROOT / "api" / "examples" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    lock = next(step for step in steps if step.get("id") == "lock")
    build = next(step for step in steps if "docker build" in step.get("run", ""))
    return {"lock": lock["run"], "build": build["run"]}


def _docker_shim(engine: DockerEngine, directory: Path) -> Path:
    """A `docker` on PATH that talks to the private engine, so the workflow script runs unchanged."""
    shim = directory / "docker"
    shim.write_text(f'#!/bin/sh\nexec /usr/bin/docker -H "unix://{engine.socket}" "$@"\n')
    shim.chmod(0o755)
    return directory


def _run_lock_step(lockd: LockdServer, workspace: Path) -> dict[str, str]:
    (workspace / "requirements.in").write_text(REQUIREMENTS_IN)
    outputs = workspace / "github_output"
    outputs.write_text("")
    env = {
        **os.environ,
        "LOCKD_URL": lockd.url,
        "LOCK_TARGET": TARGET,
        "LOCKD_TOKEN": lockd.token,
        "GITHUB_OUTPUT": str(outputs),
    }
    done = subprocess.run(
        ["bash", "-c", _workflow_scripts()["lock"]],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"lock step failed:\n{done.stdout}\n{done.stderr}"
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def _run_build_step(
    engine: DockerEngine,
    lockd: LockdServer,
    digest: str,
    sha256: str,
    image: str,
    *,
    token: str | None = None,
    flags: str = "",
) -> tuple[float, subprocess.CompletedProcess[str]]:
    with tempfile.TemporaryDirectory(prefix="lockd-shim-") as shim_dir:
        bin_dir = _docker_shim(engine, Path(shim_dir))
        env = {
            **engine.environment(),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "LOCKD_URL": lockd.url,
            "LOCK_DIGEST": digest,
            "LOCK_SHA256": sha256,
            "LOCKD_TOKEN": lockd.token if token is None else token,
            "IMAGE": image,
            "DOCKER_BUILD_FLAGS": f"--network host --progress plain --build-arg BASE_IMAGE={BASE_IMAGE_TAG} {flags}",
        }
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", _workflow_scripts()["build"]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        return time.monotonic() - started, done


def test_lockd_image_builds_small_runs_as_non_root_and_turns_healthy(
    engine: DockerEngine, base_image: str
) -> None:
    build_args = ("--build-arg", f"BASE_IMAGE={base_image}", "-t", "lockd:test", str(ROOT))
    cold, _ = _timed_build(engine, *build_args)
    cached, _ = _timed_build(engine, *build_args)
    size = _image_size_mb(engine, "lockd:test")
    base = _image_size_mb(engine, base_image)
    print(
        f"\n[docker] lockd image: cold {cold:.1f}s, layer-cached {cached:.1f}s, "
        f"{size:.0f} MB ({size - base:.0f} MB over the base)"
    )
    assert size - base < 120, (
        "the runtime layers grew past 120 MB (89 MB in Nov 2026): did the builder leak into the runtime stage?"
    )

    config = engine.run(
        "image", "inspect", "--format", "{{.Config.User}}|{{json .Config.Healthcheck.Test}}", "lockd:test"
    )
    user, healthcheck = config.stdout.strip().split("|", 1)
    assert user.split(":")[0] == IMAGE_UID and "/healthz" in healthcheck
    no_compiler = engine.run(
        "run", "--rm", "--network", "none", "lockd:test", "sh", "-c", "command -v gcc cc", check=False
    )
    assert no_compiler.returncode != 0, f"a compiler reached the runtime image: {no_compiler.stdout}"

    port = _free_port()
    container = engine.run(
        "run",
        "-d",
        "--network",
        "host",
        # As in the Kubernetes Deployment: nothing but the data volume and /tmp is writable.
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-e",
        "LOCKD_HOST=127.0.0.1",
        "-e",
        f"LOCKD_PORT={port}",
        "lockd:test",
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 90
        status = ""
        while time.monotonic() < deadline:
            status = engine.run("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(1)
        logs = engine.run("logs", container, check=False)
        assert status == "healthy", f"health status {status!r}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert engine.run("exec", container, "id", "-u").stdout.strip() == IMAGE_UID
        # The server is PID 1 after `exec`: SIGTERM stops it cleanly, no SIGKILL after the grace period.
        started = time.monotonic()
        engine.run("stop", "--time", "20", container)
        stopped_in = time.monotonic() - started
        exit_code = engine.run("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
        assert stopped_in < 15 and exit_code == "0", f"stop took {stopped_in:.1f}s, exit code {exit_code}"
    finally:
        engine.run("rm", "-f", container, check=False)


def test_consumer_image_installs_exactly_the_lock(
    engine: DockerEngine, base_image: str, lockd: LockdServer, tmp_path: Path
) -> None:
    outputs = _run_lock_step(lockd, tmp_path)
    digest, sha256 = outputs["lock_digest"], outputs["lock_sha256"]
    locked = (tmp_path / "requirements.txt").read_bytes()
    assert b"torch==2.5.1+cu124" in locked
    # The premise of LOCK_SHA256: the immutable blob is byte-identical to what POST /lock answered.
    request = urllib.request.Request(
        f"{lockd.url}/v1/blobs/{digest}/requirements.txt", headers={"Authorization": f"Bearer {lockd.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert hashlib.sha256(response.read()).hexdigest() == sha256
        assert response.headers["ETag"] == f'"{sha256}"'

    image = "trainer"
    cold, done = _run_build_step(engine, lockd, digest, sha256, image)
    assert done.returncode == 0, f"build step failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    tag = f"{image}:{digest.removeprefix('sha256:')}"
    cached, _ = _run_build_step(engine, lockd, digest, sha256, image)
    print(
        f"\n[docker] consumer image: cold {cold:.1f}s, cached {cached:.1f}s, {_image_size_mb(engine, tag):.0f} MB"
    )

    # The installed distribution's version carries the local label; the fixture module says which file.
    probe = (
        "import torch, requests, nvidia.cuda_runtime, os, importlib.metadata as m; "
        "print(m.version('torch'), torch.__fixture_file__, m.version('requests'), os.getuid())"
    )
    ran = engine.run("run", "--rm", "--network", "none", tag, "python", "-c", probe, check=False)
    assert ran.returncode == 0, ran.stderr
    torch_version, torch_file, requests_version, uid = ran.stdout.split()
    assert torch_version == "2.5.1+cu124"
    assert torch_file.startswith("torch-2.5.1+cu124-cp311-cp311-linux_x86_64"), torch_file
    assert f"requests=={requests_version}" in locked.decode()
    assert uid == IMAGE_UID
    print(
        f"[docker] consumer image imports torch {torch_version} ({torch_file}), requests {requests_version}"
    )
    label = engine.run("image", "inspect", "--format", '{{index .Config.Labels "io.lockd.lock-digest"}}', tag)
    assert label.stdout.strip() == digest

    # The token reached the fetch (anonymous reads are off) yet no layer or metadata holds it.
    metadata = engine.run("history", "--no-trunc", tag).stdout + engine.run("image", "inspect", tag).stdout
    assert lockd.token not in metadata
    saved = subprocess.run(
        engine.command("save", tag), env=engine.environment(), capture_output=True, check=True, timeout=300
    )
    assert lockd.token.encode() not in saved.stdout


def test_consumer_build_needs_the_token_secret_when_reads_are_not_anonymous(
    engine: DockerEngine, base_image: str, lockd: LockdServer, tmp_path: Path
) -> None:
    outputs = _run_lock_step(lockd, tmp_path)
    # --no-cache: a secret does not enter the cache key, so a cached fetch layer would hide the 401.
    _, done = _run_build_step(
        engine,
        lockd,
        outputs["lock_digest"],
        outputs["lock_sha256"],
        "tokenless",
        token="",
        flags="--no-cache",
    )
    assert done.returncode != 0
    assert "401" in done.stderr, done.stderr[-3000:]


def test_consumer_build_fails_when_the_checksum_does_not_match(
    engine: DockerEngine, base_image: str, lockd: LockdServer, tmp_path: Path
) -> None:
    outputs = _run_lock_step(lockd, tmp_path)
    wrong = hashlib.sha256(b"not the lock").hexdigest()
    _, done = _run_build_step(engine, lockd, outputs["lock_digest"], wrong, "tampered")
    assert done.returncode != 0
    assert "FAILED" in done.stderr and "sha256sum" in done.stderr, done.stderr[-3000:]
    listed = engine.run("image", "ls", "--format", "{{.Repository}}", "tampered").stdout.strip()
    assert listed == "", "an image was tagged although the lock did not verify"


def _post_lock(lockd: LockdServer, requirements: str, query: str) -> tuple[str, str]:
    """POST /lock with the token; (lock digest, sha256 of the requirements.txt bytes)."""
    request = urllib.request.Request(
        f"{lockd.url}/lock?{query}",
        data=requirements.encode(),
        headers={"Authorization": f"Bearer {lockd.token}", "Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read()
        return response.headers["Lock-Digest"], hashlib.sha256(body).hexdigest()


def test_consumer_image_refuses_a_lock_for_another_python_or_architecture(
    engine: DockerEngine, base_image: str, lockd: LockdServer
) -> None:
    # The local base is Debian bookworm: Python 3.11 on x86_64 with glibc 2.36.
    cases = {
        "wrong-python": ("python=3.12&platform=linux_x86_64", "Python 3.11 here, 3.12 in the lock"),
        "wrong-arch": (
            "python=3.11&platform=linux_aarch64",
            "x86_64 here, aarch64 (linux_aarch64) in the lock",
        ),
    }
    for image, (query, says) in cases.items():
        digest, sha256 = _post_lock(lockd, "lockd-fx-plain\n", query)
        _, done = _run_build_step(engine, lockd, digest, sha256, image)
        assert done.returncode != 0, f"{image}: the build installed a lock made for another image"
        assert "this image does not match the lock" in done.stderr and says in done.stderr, done.stderr[
            -3000:
        ]
        listed = engine.run("image", "ls", "--format", "{{.Repository}}", image).stdout.strip()
        assert listed == "", f"{image} was tagged although the lock was refused"
        print(f"\n[docker] {image}: refused ({says})")


def test_consumer_image_by_name_for_a_cpu_lock_is_two_stages_and_healthchecked(
    engine: DockerEngine, base_image: str, lockd: LockdServer
) -> None:
    digest, _ = _post_lock(
        lockd, "torch==2.5.1\n", "python=3.11&platform=linux_x86_64&cuda=cpu&name=ml/cpu-trainer"
    )
    # By name: no checksum to give; the build verifies what lockd states and records the digest.
    _, done = _run_build_step(
        engine, lockd, digest, "", "cpu-trainer", flags="--build-arg LOCK_NAME=ml/cpu-trainer"
    )
    assert done.returncode == 0, f"build failed:\n{done.stderr[-6000:]}"
    tag = f"cpu-trainer:{digest}"
    probe = "import torch, importlib.metadata as m; print(m.version('torch'), open('/opt/lock/lock-digest').read().strip())"
    ran = engine.run("run", "--rm", "--network", "none", tag, "python", "-c", probe, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["2.5.1+cpu", digest]
    # Only the venv and the lock reached the runtime stage: not the scripts, not pip's cache.
    leftovers = engine.run(
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "sh",
        "-c",
        "ls /opt/lock; ls /root/.cache 2>/dev/null | wc -l",
        check=False,
    )
    assert "fetch_lock.py" not in leftovers.stdout and "check_target.py" not in leftovers.stdout
    config = engine.run(
        "image",
        "inspect",
        "--format",
        '{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{index .Config.Labels "io.lockd.lock-name"}}',
        tag,
    ).stdout.strip()
    user, healthcheck, name = config.split("|")
    assert (
        user.split(":")[0] == IMAGE_UID and "importlib.metadata" in healthcheck and name == "ml/cpu-trainer"
    )
