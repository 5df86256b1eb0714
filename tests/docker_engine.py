"""A private Docker engine for the docker-marked tests: start and stop dockerd, build the local base.

No registry is reachable from CI, so the Python base image is made here with debootstrap and
`docker import`. debootstrap takes about a minute, so its root filesystem is cached as a tarball
under /var/cache/lockd-test (or $LOCKD_TEST_CACHE_DIR), keyed by the exact debootstrap command.
The engine runs with its own data-root, exec-root and socket, no bridge and no iptables, so it
never touches a Docker daemon or network setup that the machine may already have; builds and
containers use `--network host` and reach services on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_IMAGE_TAG",
    "DEBOOTSTRAP_COMMAND",
    "DockerEngine",
    "DockerUnavailable",
    "build_local_base",
    "private_docker_engine",
]

# Debian's client: it drives BuildKit with DOCKER_BUILDKIT=1, the newer /usr/local/bin one has no buildx.
DOCKER_CLIENT = "/usr/bin/docker"
BASE_IMAGE_TAG = "local/debian-python"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# ROOTFS is replaced by the target directory; the rest of the command is the cache key.
DEBOOTSTRAP_COMMAND = (
    "debootstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "bookworm",
    "ROOTFS",
    "http://deb.debian.org/debian",
)


class DockerUnavailable(RuntimeError):
    """dockerd cannot run on this machine; the message says why (the tests skip with it)."""


@dataclass(frozen=True, slots=True)
class DockerEngine:
    """A running private dockerd: its socket, pid and the temp directory holding its state."""

    socket: Path
    pid: int
    root: Path

    def command(self, *args: str) -> list[str]:
        return [DOCKER_CLIENT, "-H", f"unix://{self.socket}", *args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_BUILDKIT"] = "1"
        # The client must not pick up a user's ~/.docker config or credentials helpers.
        env["DOCKER_CONFIG"] = str(self.root / "client")
        return env

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: bytes | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this engine; output is captured as text."""
        completed = subprocess.run(
            self.command(*args),
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {completed.returncode}\n"
                f"--- stdout\n{completed.stdout[-4000:]}\n--- stderr\n{completed.stderr[-8000:]}"
            )
        return completed


def _start(root: Path, timeout: float) -> DockerEngine:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailable("dockerd is not installed (apt-get install docker.io)")
    if not Path(DOCKER_CLIENT).exists():
        raise DockerUnavailable(f"{DOCKER_CLIENT} is missing (Debian's docker.io package provides it)")
    if os.geteuid() != 0:
        raise DockerUnavailable("dockerd needs root here (no rootless setup)")
    socket = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            dockerd,
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "dockerd.pid"),
            "-H",
            f"unix://{socket}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    engine = DockerEngine(socket=socket, pid=process.pid, root=root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
            raise DockerUnavailable(f"dockerd exited with {process.returncode} at start:\n{tail}")
        if socket.exists() and engine.run("version", check=False, timeout=10).returncode == 0:
            return engine
        time.sleep(0.3)
    _stop(engine)
    raise DockerUnavailable(f"dockerd did not answer on {socket} within {timeout:.0f}s")


def _stop(engine: DockerEngine) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(engine.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(engine.pid, os.WNOHANG)
        except ChildProcessError:
            return
        if finished:
            return
        time.sleep(0.2)
    # dockerd ignored SIGTERM for 30 s: a stuck shutdown must not hang the test session.
    with contextlib.suppress(ProcessLookupError):
        os.kill(engine.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(engine.pid, 0)


def _remove_state(root: Path) -> None:
    # Overlay mounts are gone once dockerd has stopped; anything still mounted is unmounted
    # so rmtree does not descend into (or fail on) a live mount.
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    for line in reversed(mounts):
        mountpoint = line.split()[1]
        if mountpoint.startswith(str(root) + "/"):
            subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def private_docker_engine(timeout: float = 60) -> Iterator[DockerEngine]:
    """Start a dockerd with all its state in a fresh temp dir; stop it and delete the dir after."""
    # Short path: containerd puts unix sockets under exec-root, and those have a 108-byte limit.
    root = Path(tempfile.mkdtemp(prefix="lockd-dockerd-", dir="/tmp"))
    try:
        engine = _start(root, timeout)
    except BaseException:
        _remove_state(root)
        raise
    try:
        yield engine
    finally:
        _stop(engine)
        _remove_state(root)


def _cache_dir() -> Path:
    return Path(os.environ.get("LOCKD_TEST_CACHE_DIR", "/var/cache/lockd-test"))


def _rootfs_tarball(command: Sequence[str]) -> Path:
    """The debootstrap root filesystem as a tarball, from the cache or made now (about a minute)."""
    key = hashlib.sha256("\0".join(command).encode()).hexdigest()[:16]
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-python-{key}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise DockerUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="lockd-rootfs-", dir="/tmp") as scratch:
        rootfs = Path(scratch) / "rootfs"
        argv = [str(rootfs) if part == "ROOTFS" else part for part in command]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            raise AssertionError(
                f"debootstrap failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        partial = cache / f"{tarball.name}.{os.getpid()}.partial"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        # Renamed only when complete, so an interrupted run never leaves a truncated cache entry.
        partial.rename(tarball)
    return tarball


def build_local_base(engine: DockerEngine, tag: str = BASE_IMAGE_TAG) -> str:
    """Import the cached debootstrap rootfs (Debian bookworm, python3 3.11) as `tag`; return its image id.

    The host's CA bundle is laid over Debian's: where outbound TLS passes through an
    intercepting proxy (as on CI here), pip inside a build trusts exactly what the host trusts.
    """
    tarball = _rootfs_tarball(DEBOOTSTRAP_COMMAND)
    rootfs_tag = f"{tag}:rootfs"
    with tarball.open("rb") as source:
        imported = subprocess.run(
            engine.command("import", "--change", "ENV LANG=C.UTF-8", "-", rootfs_tag),
            stdin=source,
            capture_output=True,
            text=True,
            env=engine.environment(),
            check=False,
            timeout=600,
        )
    if imported.returncode != 0:
        raise AssertionError(f"docker import failed: {imported.stderr}")
    with tempfile.TemporaryDirectory(prefix="lockd-base-", dir="/tmp") as context:
        dockerfile = [f"FROM {rootfs_tag}"]
        if HOST_CA_BUNDLE.exists():
            shutil.copyfile(HOST_CA_BUNDLE, Path(context) / "ca-certificates.crt")
            dockerfile.append("COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt")
        (Path(context) / "Dockerfile").write_text("\n".join(dockerfile) + "\n")
        engine.run("build", "--network", "host", "-t", tag, context)
    return engine.run("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
