"""The deployment files say what lockd can do: compose, Kubernetes, CI example, Dockerfiles, .dockerignore.

Fast and always run. Probes must point at routes of the HTTP contract (api/openapi.json, or the
HTTP surface of the design while the contract is not committed), every `LOCKD_*` variable must be
a field of `lockd.config.Settings`, every `python -m lockd ...` command must exist, and the
Dockerfiles must keep the properties the images are built for (pinned base, hashed installs,
non-root, no secrets in build args).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockd.config import setting_names
from lockd.scheduler import parse_cron

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "api" / "examples" / "k8s"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY", re.IGNORECASE)
PINNED_BASE = re.compile(r"^BASE_IMAGE=[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


# ---------------------------------------------------------------- the HTTP contract


def _contract_routes() -> set[tuple[str, str]]:
    """(method, path) pairs lockd serves: from api/openapi.json, else the design's HTTP surface."""
    openapi = ROOT / "api" / "openapi.json"
    if openapi.exists():
        spec = json.loads(openapi.read_text())
        return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    design = ROOT.parent / "shared" / "DESIGN.md"
    routes = set()
    for method, path in re.findall(r"`(GET|POST|PUT|DELETE) (/[^` ]*)`", design.read_text()):
        routes.add((method, path))
    return routes


def test_contract_routes_are_known() -> None:
    routes = _contract_routes()
    # Without these the probe checks below would compare against nothing.
    assert ("GET", "/healthz") in routes
    assert ("GET", "/readyz") in routes


def _settings_variables() -> set[str]:
    return {f"LOCKD_{name.upper()}" for name in setting_names()}


# ---------------------------------------------------------------- Dockerfiles


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, rest = whole.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, f"{dockerfile} ends inside a continued line"
    return instructions


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _user_uid(instructions: list[tuple[str, str]]) -> int:
    users = [rest for keyword, rest in _final_stage(instructions) if keyword == "USER"]
    assert users, "the final stage sets no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit(), f"USER {users[-1]} is not numeric"
    assert int(uid) != 0
    return int(uid)


@pytest.mark.parametrize("path", ["Dockerfile", "api/examples/Dockerfile"])
def test_dockerfile_base_is_pinned_by_digest_through_a_build_arg(path: str) -> None:
    text = (ROOT / path).read_text()
    instructions = _instructions(ROOT / path)
    assert not text.startswith("# syntax="), "a syntax line pulls the frontend from a registry on every build"
    assert instructions[0][0] == "ARG", "BASE_IMAGE must be declared before the first FROM"
    assert PINNED_BASE.match(instructions[0][1]), instructions[0][1]
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert all(rest.startswith("${BASE_IMAGE}") for rest in froms), froms


@pytest.mark.parametrize("path", ["Dockerfile", "api/examples/Dockerfile"])
def test_dockerfile_takes_no_secret_as_build_arg_or_env(path: str) -> None:
    for keyword, rest in _instructions(ROOT / path):
        if keyword in ("ARG", "ENV"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=?", rest):
                assert not SECRET_NAME.search(name), (
                    f"{keyword} {name}: secrets go through RUN --mount=type=secret"
                )


def test_lockd_dockerfile_is_multi_stage_hashed_non_root_and_healthchecked() -> None:
    instructions = _instructions(ROOT / "Dockerfile")
    final = _final_stage(instructions)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert sum(1 for keyword, _ in instructions if keyword == "FROM") >= 2
    assert any(keyword == "COPY" and rest.startswith("--from=builder") for keyword, rest in final)
    assert (
        "--require-hashes" in runs
        and "--no-deps" in runs
        and "requirements/runtime.txt"
        in " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    )
    assert "--mount=type=cache,target=/root/.cache/pip" in runs
    # Compilers are installed in the builder only.
    assert not any(keyword == "RUN" and "apt-get install" in rest for keyword, rest in final)
    envs = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in envs
    healthchecks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert "curl" not in healthchecks[0], "the runtime image carries no curl"
    _user_uid(instructions)
    copied = {
        rest.split()[0] for keyword, rest in final if keyword == "COPY" and not rest.startswith("--from")
    }
    assert {"lockd", "migrations"} <= copied


def test_example_dockerfile_fetches_by_digest_verifies_and_installs_hashed() -> None:
    instructions = _instructions(ROOT / "api" / "examples" / "Dockerfile")
    args = {rest.split("=")[0] for keyword, rest in instructions if keyword == "ARG"}
    assert {"LOCKD_URL", "LOCK_DIGEST", "LOCK_SHA256", "BASE_IMAGE"} <= args
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    fetch = next(run for run in runs if "/v1/blobs/" in run)
    assert "--mount=type=secret,id=lockd_token" in fetch
    assert "sha256sum -c" in fetch
    install = next(run for run in runs if "pip install" in run)
    assert "--require-hashes" in install and "--no-deps" in install
    # Verification comes before the install, in an earlier layer.
    assert runs.index(fetch) < runs.index(install)
    _user_uid(instructions)


def test_example_dockerfile_gives_the_gpu_runtime_advice() -> None:
    text = (ROOT / "api" / "examples" / "Dockerfile").read_text()
    assert "--gpus all" in text and "--shm-size" in text


# ---------------------------------------------------------------- .dockerignore


def _dockerignored(rules: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent matches the path."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.rstrip("/")
        patterns = [pattern]
        if pattern.startswith("**/"):
            patterns.append(pattern[3:])
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in patterns):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_local_state_out_and_code_in() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "var/lockd.db",
        "lockd.db",
        ".env",
        "lockd/__pycache__/x.pyc",
        ".mypy_cache/x",
        "tests/test_x.py",
        "fixtures/index.py",
        "requirements/dev.txt",
    ]:
        assert _dockerignored(rules, path), f"{path} would be sent to the build"
    for path in [
        "lockd/__init__.py",
        "lockd/http/__init__.py",
        "migrations/env.py",
        "requirements/runtime.txt",
        "pyproject.toml",
        "alembic.ini",
    ]:
        assert not _dockerignored(rules, path), f"{path} is needed by the Dockerfile"


# ---------------------------------------------------------------- docker-compose.yml


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_runs_migrations_before_lockd_against_a_healthy_postgres() -> None:
    services = _compose()["services"]
    postgres, migrate, lockd = services["postgres"], services["migrate"], services["lockd"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert migrate["command"] == ["python", "-m", "lockd", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert lockd["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert lockd["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert lockd["command"][:4] == ["python", "-m", "lockd", "serve"]
    assert lockd["environment"]["LOCKD_DATABASE_URL"].startswith("postgresql+psycopg://")
    # The drift scheduler is on in the compose setup.
    assert lockd["environment"].get("LOCKD_DRIFT_CRON") or lockd["environment"].get("LOCKD_DRIFT_INTERVAL")


def test_compose_environment_names_are_lockd_settings_and_hold_no_password() -> None:
    known = _settings_variables()
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name, service in _compose()["services"].items():
        for variable, value in service.get("environment", {}).items():
            if variable.startswith("LOCKD_"):
                assert variable in known, f"{name}: {variable} is not a lockd setting"
            if "PASSWORD" in variable or "postgresql" in str(value):
                assert "${POSTGRES_PASSWORD:?" in str(value), (
                    f"{name}: {variable} must come from the environment"
                )
    cron = re.search(r"LOCKD_DRIFT_CRON: \"\$\{LOCKD_DRIFT_CRON:-([^}]*)\}\"", compose_text)
    assert cron is not None
    parse_cron(cron.group(1))


# ---------------------------------------------------------------- Kubernetes


def _k8s() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["metadata"]["name"], path
            documents[document["kind"]] = document
    return documents


def _pod_specs(documents: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        documents["Deployment"]["spec"]["template"]["spec"],
        documents["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]


def test_k8s_has_the_four_objects() -> None:
    assert {"Deployment", "Service", "Secret", "CronJob"} <= set(_k8s())


def test_k8s_probes_point_at_real_routes_and_ports() -> None:
    routes = _contract_routes()
    deployment = _k8s()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        assert ("GET", http_get["path"]) in routes
        assert http_get["port"] in ports or http_get["port"] in ports.values()
    serve = container["command"]
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == int(serve[serve.index("--port") + 1])


def test_k8s_service_selects_the_deployment_pods() -> None:
    documents = _k8s()
    labels = documents["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = documents["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    container_ports = {
        p["name"] for p in documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert all(port["targetPort"] in container_ports for port in service["ports"])


def test_k8s_pods_run_as_the_image_user_with_resources_and_the_database_secret() -> None:
    documents = _k8s()
    image_uid = _user_uid(_instructions(ROOT / "Dockerfile"))
    secret = documents["Secret"]
    assert "LOCKD_DATABASE_URL" in secret["stringData"]
    known = _settings_variables()
    for pod in _pod_specs(documents):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == image_uid
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
            assert secret["metadata"]["name"] in refs, container["name"]
            for variable in container.get("env", []):
                if variable["name"].startswith("LOCKD_"):
                    assert variable["name"] in known, variable["name"]


def test_k8s_cronjob_runs_drift_on_a_valid_schedule_one_at_a_time() -> None:
    cronjob = _k8s()["CronJob"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    parse_cron(cronjob["spec"]["schedule"])
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "lockd", "drift", "run"]


def _lockd_commands() -> set[tuple[str, ...]]:
    """Every `python -m lockd ...` subcommand the deployment files run (without its options)."""
    commands: set[tuple[str, ...]] = set()
    containers: list[dict[str, Any]] = list(_compose()["services"].values())
    for pod in _pod_specs(_k8s()):
        containers += pod.get("initContainers", []) + pod["containers"]
    for container in containers:
        command = container.get("command") or []
        if command[:3] == ["python", "-m", "lockd"]:
            commands.add(tuple(word for word in command[3:] if not word.startswith("-"))[:2])
    return commands


def test_lockd_commands_in_the_deployment_files_exist() -> None:
    commands = _lockd_commands()
    assert {("migrate",), ("drift", "run")} <= commands
    if importlib.util.find_spec("lockd.cli") is None:
        pytest.skip("lockd.cli is not written yet: the commands cannot be checked against it")
    for command in sorted(commands):
        # `serve 0.0.0.0` etc. are option values, dropped above; --help proves the subcommand parses.
        words = [word for word in command if re.fullmatch(r"[a-z-]+", word)]
        done = subprocess.run(
            [sys.executable, "-m", "lockd", *words, "--help"],
            check=False,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert done.returncode == 0, f"python -m lockd {' '.join(words)} --help: {done.stderr[-2000:]}"


# ---------------------------------------------------------------- the CI example


def _workflow_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load((ROOT / "api" / "examples" / "github-actions.yml").read_text())
    return workflow["jobs"]["build"]["steps"]  # type: ignore[no-any-return]


def test_workflow_locks_fails_on_error_and_passes_the_digest_to_the_build() -> None:
    steps = _workflow_steps()
    lock = next(step for step in steps if step.get("id") == "lock")
    build = next(step for step in steps if "docker build" in step.get("run", ""))
    assert "--fail-with-body" in lock["run"] and "--data-binary @requirements.in" in lock["run"]
    assert "set -euo pipefail" in lock["run"]
    assert build["env"]["LOCK_DIGEST"] == "${{ steps.lock.outputs.lock_digest }}"
    assert build["env"]["LOCK_SHA256"] == "${{ steps.lock.outputs.lock_sha256 }}"
    assert '--build-arg LOCK_DIGEST="$LOCK_DIGEST"' in build["run"]
    assert "id=lockd_token" in build["run"]
    assert "api/examples/Dockerfile" in build["run"]
    for match in re.findall(r"--build-arg\s+(\w+)", build["run"]):
        assert not SECRET_NAME.search(match), f"--build-arg {match} would store a secret in the image"


def test_workflow_scripts_are_valid_bash_without_expressions() -> None:
    for step in _workflow_steps():
        script = step.get("run")
        if script is None:
            continue
        assert "${{" not in script, f"{step['name']}: pass values through env:, not inline expressions"
        checked = subprocess.run(
            ["bash", "-n"], check=False, input=script, capture_output=True, text=True, timeout=10
        )
        assert checked.returncode == 0, checked.stderr
