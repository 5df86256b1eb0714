"""The committed API contract (`api/openapi.json`) and the CI example script that consumes it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from lockd.cli import openapi_document
from lockd.config import Settings
from tests.support import ROOT, LockdServer

SCRIPT = ROOT / "api" / "examples" / "ci-lock.sh"


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "api" / "openapi.json").read_text()
    generated = openapi_document(Settings(database_url="sqlite://"))
    assert json.loads(generated) == json.loads(committed), (
        "the app's API differs from api/openapi.json: review the change, then run "
        "`python -m lockd openapi > api/openapi.json`"
    )
    assert generated == committed  # byte-identical too, so the diff in review is the real one


def test_every_error_response_is_documented_as_problem_json() -> None:
    document = json.loads((ROOT / "api" / "openapi.json").read_text())
    lock = document["paths"]["/lock"]["post"]
    assert "application/problem+json" in lock["responses"]["422"]["content"]
    assert "application/problem+json" in lock["responses"]["504"]["content"]
    assert "text/plain" in lock["requestBody"]["content"]


def _run_script(
    server: LockdServer, tmp_path: Path, requirements: str, token: str | None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "requirements.in").write_text(requirements)
    env = {**os.environ, "LOCKD_URL": server.url, "LOCK_PYTHON": "3.11", "LOCK_PLATFORM": "linux_x86_64"}
    env.pop("LOCKD_TOKEN", None)
    if token is not None:
        env["LOCKD_TOKEN"] = token
    return subprocess.run(
        [str(SCRIPT), "requirements.in", "requirements.txt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ci_script_prints_the_digest_and_writes_the_lock(
    lockd_server: LockdServer, tmp_path: Path, unique_requirements: str
) -> None:
    done = _run_script(lockd_server, tmp_path, unique_requirements, lockd_server.tokens["lock"])
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert len(digest) == 64
    written = (tmp_path / "requirements.txt").read_bytes()
    with lockd_server.client("read") as client:
        assert client.get(f"/v1/blobs/{digest}/requirements.txt").content == written
    assert b"lockd-fx-plain==1.1" in written


def test_ci_script_fails_the_job_with_the_problem_detail(lockd_server: LockdServer, tmp_path: Path) -> None:
    done = _run_script(lockd_server, tmp_path, "numpy\n!!broken\n", lockd_server.tokens["lock"])
    assert done.returncode != 0
    assert "invalid-requirement" in done.stderr
    assert "line 2" in done.stderr
    assert not (tmp_path / "requirements.txt").exists()
    unauthenticated = _run_script(lockd_server, tmp_path, "numpy\n", None)
    assert unauthenticated.returncode != 0
    assert "unauthorized" in unauthenticated.stderr
