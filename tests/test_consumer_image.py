"""The consumer image's own scripts, run here on the host: `check_target.py` refuses a lock made for
another Python, architecture or OS and picks pip's flags; `fetch_lock.py` fetches a lock by digest
or by name from a live server and checks both files. (tests/test_docker.py builds the image.)"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, LockdServer

EXAMPLES = ROOT / "api" / "examples"
HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}.0"
HOST_PLATFORM = {"x86_64": "linux_x86_64", "aarch64": "linux_aarch64"}.get(platform.machine(), "linux_x86_64")
WHEEL = {"filename": "a-1.0-py3-none-any.whl", "kind": "wheel"}
SDIST = {"filename": "b-1.0.tar.gz", "kind": "sdist"}


def _check(
    tmp_path: Path, target: dict[str, Any], *packages: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({"target": target, "packages": list(packages)}))
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "check_target.py"), str(lock)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_matching_lock_passes_with_wheels_only_unless_it_pins_an_sdist(tmp_path: Path) -> None:
    target = {"platform": HOST_PLATFORM, "python": HOST_PYTHON, "cuda": "cu124"}
    wheels = _check(tmp_path, target, {"name": "a", "files": [WHEEL, SDIST]})
    assert wheels.returncode == 0, wheels.stderr
    assert wheels.stdout.strip() == "--only-binary :all:"
    sdist = _check(tmp_path, target, {"name": "a", "files": [WHEEL]}, {"name": "b", "files": [SDIST]})
    assert sdist.returncode == 0 and sdist.stdout.strip() == ""


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ({"platform": HOST_PLATFORM, "python": "3.9.0"}, f"Python {HOST_PYTHON[:-2]} here, 3.9 in the lock"),
        (
            {
                "platform": "linux_aarch64" if HOST_PLATFORM == "linux_x86_64" else "linux_x86_64",
                "python": HOST_PYTHON,
            },
            f"{platform.machine()} here",
        ),
        ({"platform": "macos_arm64", "python": HOST_PYTHON}, "cannot run a lock for macos_arm64"),
        ({"platform": HOST_PLATFORM, "python": HOST_PYTHON, "glibc": "9.99"}, "glibc >= 9.99 in the lock"),
    ],
    ids=["python", "architecture", "os", "glibc"],
)
def test_a_lock_for_another_image_is_refused_naming_both(
    tmp_path: Path, target: dict[str, Any], says: str
) -> None:
    refused = _check(tmp_path, target, {"name": "a", "files": [WHEEL]})
    assert refused.returncode == 1 and refused.stdout == ""
    assert "this image does not match the lock" in refused.stderr and says in refused.stderr
    assert "image: Python" in refused.stderr and f"lock:  {target['platform']}" in refused.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_fetch_lock_by_digest_and_by_name(
    start_lockd: Callable[..., LockdServer], database_url: str, tmp_path: Path
) -> None:
    server = start_lockd(database_url)
    with server.client("lock") as client:
        made = client.post(
            "/lock",
            params={"platform": "linux_x86_64", "python": "3.11", "name": "ml/app"},
            content="lockd-fx-plain\n",
            headers={"content-type": "text/plain"},
        )
    assert made.status_code == 201, made.text
    digest = made.headers["lock-digest"]
    for source in (f"/v1/blobs/{digest}", "/v1/names/ml/app"):
        out = tmp_path / source.replace("/", "_")
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "fetch_lock.py"), server.url, source, str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (out / "requirements.txt").read_text() == made.text
        assert (out / "lock-digest").read_text().strip() == digest
        assert json.loads((out / "lock.json").read_text())["target"]["platform"] == "linux_x86_64"
    missing = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "fetch_lock.py"),
            server.url,
            "/v1/names/ml/nobody",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "lockd answered 404" in missing.stderr
