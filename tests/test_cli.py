"""The `lockd` command as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd.config import Settings
from lockd.http.models import OptionsBody
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.routing import plan_for
from lockd.service import Service
from lockd.target import Target
from tests.support import ROOT, loopback_http


def _python(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")},
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def _lockd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return _python("-m", "lockd", *args, env=env, cwd=cwd)


# Loaded only by the subcommands that use them: together they were half of `lockd lock`'s start-up.
_DEFERRED_PACKAGES = ("alembic", "fastapi", "jinja2", "sqlalchemy", "starlette", "uvicorn")
# Loaded by `lockd lock` only once it runs: `--help` and usage errors are answered without them.
_RUN_PACKAGES = ("httpx", "pydantic", "pydantic_settings", "resolvelib", "rich")


def test_lock_and_help_start_without_the_web_and_database_stacks() -> None:
    probe = (
        "import contextlib, io, json, sys, lockd.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    lockd.cli.main(['lock', '--help'])\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {_DEFERRED_PACKAGES + _RUN_PACKAGES!r})))\n"
    )
    done = _python("-c", probe)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_lock_run_loads_no_web_or_database_stack_and_asks_the_index_soon(tmp_path: Path) -> None:
    # A whole `lockd lock`, up to its first request (a loopback index that knows no project).
    first_request = threading.Event()

    class NoProjects(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            first_request.set()
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    (tmp_path / "requirements.in").write_text("numpy\n")
    with loopback_http(NoProjects) as host:
        probe = (
            "import contextlib, io, json, sys, lockd.cli\n"
            "with contextlib.redirect_stderr(io.StringIO()):\n"
            f"    code = lockd.cli.main(['lock', 'requirements.in', '--platform', 'linux_x86_64', '--python', "
            f"'3.11', '--index-url', 'http://{host}/simple/', '--no-cache'])\n"
            f"print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in {_DEFERRED_PACKAGES!r})]))\n"
        )
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-c", probe],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        asked = first_request.wait(60)
        seconds = time.monotonic() - started
        cpu = _cpu_seconds(process.pid)
        out, err = process.communicate(timeout=60)
    assert asked, err
    assert json.loads(out) == [1, []], err  # exit 1: the index has no numpy
    # Generous bounds (about 0.4 s of CPU on a quiet machine; bench/cli.py measures it): they
    # catch a heavy stack loaded before the first request, not a slow machine.
    assert cpu < 2.5 and seconds < 30, (cpu, seconds)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux): load on the machine does not inflate it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_lock_without_a_server_is_quiet_when_piped(fixture_index: WatchedIndex, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("torch==2.5.1\n")
    (tmp_path / "constraints.txt").write_text("numpy<2.3\n")
    done = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.11",
        "--cuda",
        "cu124",
        "-c",
        "constraints.txt",
        "--index-url",
        fixture_index.pypi_url,
        "--pytorch-index-url",
        fixture_index.pytorch_base,
        "--format",
        "pylock.toml",
        "-o",
        "pylock.toml",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    written = (tmp_path / "pylock.toml").read_text()
    assert "2.5.1+cu124" in written
    piped = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.11",
        "--cuda",
        "cu124",
        env={
            "LOCKD_INDEX_URL": fixture_index.pypi_url,
            "LOCKD_PYTORCH_INDEX_URL": fixture_index.pytorch_base,
        },
        cwd=tmp_path,
    )
    assert piped.returncode == 0, piped.stderr
    assert "torch==2.5.1+cu124" in piped.stdout
    assert not (tmp_path / "var").exists()  # no database was touched


def test_errors_print_message_and_hint_and_exit_non_zero(fixture_index: WatchedIndex, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\nlockd-fx-conflict-a\nlockd-fx-conflict-b>=2\n")
    done = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.11",
        "--index-url",
        fixture_index.pypi_url,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert "lockd-fx-conflict-b" in done.stderr
    assert "Traceback" not in done.stderr
    bad_target = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "macos_arm64",
        "--python",
        "3.11",
        "--cuda",
        "cu124",
        cwd=tmp_path,
    )
    assert bad_target.returncode == 1
    assert "hint: " in bad_target.stderr
    bad_config = _lockd("migrate", env={"LOCKD_DATABASE_URL": "mysql://nope"})
    assert bad_config.returncode == 1
    assert "LOCKD_DATABASE_URL" in bad_config.stderr
    assert _lockd("frobnicate").returncode == 2


def test_lock_through_a_private_index_keeps_its_credentials_out_of_the_lock(
    mutable_index: ControlledIndex, tmp_path: Path
) -> None:
    # --index-url carries the mirror's credentials; LOCKD_PYTORCH_INDEX_URL carries the PyTorch side's.
    host = mutable_index.url.removeprefix("http://")
    mutable_index.require_auth("ci-user", "index-s3cret")
    mutable_index.require_auth("torch-t0ken", "", path_prefix="/whl/")
    (tmp_path / "requirements.in").write_text("triton==3.1.0\n")
    done = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.11",
        "--cuda",
        "cu124",
        "--index-url",
        f"http://ci-user:index-s3cret@{host}/simple/",
        "--format",
        "pylock.toml",
        env={
            "LOCKD_PYTORCH_INDEX_URL": f"http://torch-t0ken@{host}/whl",
            "LOCKD_INDEX_URL": "http://env:env@pypi.invalid/simple/",
        },
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f'url = "http://{host}/whl/cu124/triton-3.1.0-' in done.stdout
    assert f'default-index = "http://{host}/simple/"' in done.stdout
    for secret in ("index-s3cret", "ci-user", "torch-t0ken", f"@{host}", "pypi.invalid"):
        assert secret not in done.stdout + done.stderr
    wrong = _lockd(
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.11",
        "--cuda",
        "cu124",
        "--index-url",
        f"http://ci-user:wrong-s3cret@{host}/simple/",
        "--pytorch-index-url",
        f"http://torch-t0ken@{host}/whl",
        cwd=tmp_path,
    )
    assert wrong.returncode == 1
    assert f"answered HTTP 401: it refused the credentials configured for {host}" in wrong.stderr
    assert "s3cret" not in wrong.stderr and "ci-user" not in wrong.stderr


def test_migrate_and_token_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrated = _lockd("migrate", env={"LOCKD_DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    created = _lockd("token", "create", "--scope", "lock", "--name", "ci", env={"LOCKD_DATABASE_URL": url})
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("lockd_") and len(token) > 40
    assert "shown once" in created.stderr
    service = Service.open(Settings(database_url=url))
    try:
        assert service.tokens.authenticate(token) == frozenset({"lock", "read"})
        assert service.tokens.authenticate(token + "x") is None
    finally:
        service.close()
    assert token not in (tmp_path / "cli.db").read_bytes().decode("latin-1")


def test_openapi_command_prints_the_contract() -> None:
    done = _lockd("openapi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "api" / "openapi.json").read_text()


def test_as_of_is_the_api_option_and_the_header_command_reproduces_the_lock(
    fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    (tmp_path / "requirements.in").write_text("lockd-fx-pyreq\n")
    args = (
        "lock",
        "requirements.in",
        "--platform",
        "linux_x86_64",
        "--python",
        "3.12",
        "--index-url",
        fixture_index.pypi_url,
    )
    latest = _lockd(*args, cwd=tmp_path)
    before_2_0 = _lockd(*args, "--as-of", "2024-01-05T18:00:00Z", cwd=tmp_path)
    assert latest.returncode == 0 and before_2_0.returncode == 0, latest.stderr + before_2_0.stderr
    assert "lockd-fx-pyreq==1.0 " in before_2_0.stdout and "lockd-fx-pyreq==1.0 " not in latest.stdout
    # The header names the command that made the lock; it runs, and gives the same bytes.
    (command,) = [
        line.removeprefix("#    ")
        for line in before_2_0.stdout.splitlines()
        if line.startswith("#    lockd lock ")
    ]
    assert "--as-of 2024-01-05T18:00:00+00:00" in command
    assert _lockd(*shlex.split(command)[1:], cwd=tmp_path).stdout == before_2_0.stdout
    same_instant = _lockd(*args, "--as-of", "2024-01-05T19:00:00+01:00", cwd=tmp_path)
    assert same_instant.stdout == before_2_0.stdout
    # The input digest is the one the API gives the same as_of.
    target = Target.of("linux_x86_64", "3.12")
    api = LockRequest(
        requirements=parse_requirements("lockd-fx-pyreq"),
        constraints=(),
        target=target,
        plan=plan_for(target, default_url=fixture_index.pypi_url),
        options=LockOptions(as_of=OptionsBody.model_validate({"as_of": "2024-01-05T18:00:00Z"}).as_of),
    )
    assert f"# input digest: sha256:{api.digest}\n" in before_2_0.stdout
    bad = _lockd(*args, "--as-of", "yesterday", cwd=tmp_path)
    assert bad.returncode == 1 and "ISO 8601" in bad.stderr and "hint: " in bad.stderr


def test_lock_ends_its_process_once_its_output_and_cache_are_written(
    fixture_index: WatchedIndex, tmp_path: Path
) -> None:
    # Interpreter shutdown would free a resolution's heap object by object: `lockd lock` ends at
    # once instead (no atexit handler runs), after its lock, its warnings and its cache are out.
    (tmp_path / "requirements.in").write_text("torch==2.5.1\n")
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('interpreter shutdown', file=sys.stderr))\n"
        "from lockd.cli import main\n"
        "sys.exit(main())\n"
    )
    argv = ["lock", "requirements.in", "--platform", "linux_x86_64", "--python", "3.11", "--cuda", "cu124"]
    argv += ["--index-url", fixture_index.pypi_url, "--pytorch-index-url", fixture_index.pytorch_base]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    first = _python("-c", script, *argv, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "torch==2.5.1+cu124" in first.stdout and first.stdout.endswith("\n")
    assert "interpreter shutdown" not in first.stderr
    fixture_index.reset_counters()
    second = _python("-c", script, *argv, cwd=tmp_path)
    assert second.stdout == first.stdout
    assert fixture_index.counters().requests.get("page", 0) == 0, "the cache was not written before the exit"
    # A failure still goes through the ordinary exit, and so does `main(argv)` called in a program.
    failed = _python("-c", script, "lock", "missing.in", *argv[2:], cwd=tmp_path)
    assert failed.returncode != 0 and "cannot read missing.in" in failed.stderr
    assert "interpreter shutdown" in failed.stderr
    in_process = _python("-c", script.replace("main()", f"main({argv!r})"), cwd=tmp_path)
    assert in_process.returncode == 0 and "interpreter shutdown" in in_process.stderr
