"""Every setting a real deployment needs reaches every container that needs it.

docker-compose.yml passes each `LOCKD_*` setting its header documents to every lockd container;
the Kubernetes servers and the drift CronJob read one ConfigMap and one Secret (the index URLs,
with a private mirror's credentials, are in the Secret), so a scheduled drift run reads a private
index as the servers did; third-party images are pinned by digest; every example that calls
`/lock` sends a token; and an empty variable counts as unset, so compose may pass `${X:-}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockd.config import load_settings, setting_names

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "api" / "examples" / "k8s"
SETTINGS = {f"LOCKD_{name.upper()}" for name in setting_names()}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_passes_every_setting_it_documents_to_every_lockd_container() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    # LOCKD_TOKEN is the client's (curl, `lockd check`), not a server setting.
    documented = set(re.findall(r"\b(LOCKD_[A-Z_]+)\b", header)) - {"LOCKD_TOKEN"}
    assert {
        "LOCKD_INDEX_URL",
        "LOCKD_PYTORCH_INDEX_URL",
        "LOCKD_DRIFT_CRON",
        "LOCKD_WEBHOOK_URL",
    } <= documented
    assert documented <= SETTINGS, documented - SETTINGS
    services = _compose()["services"]
    for name in ("migrate", "lockd"):
        passed = set(services[name]["environment"])
        assert documented <= passed, f"{name} lacks {sorted(documented - passed)}"
        assert passed <= SETTINGS, f"{name}: {sorted(passed - SETTINGS)} are not lockd settings"


def test_third_party_images_are_pinned_by_digest() -> None:
    for name, service in _compose()["services"].items():
        if "build" not in service:
            assert DIGEST.search(service["image"]), f"{name}: {service['image']} is not pinned by digest"


def _k8s() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def _containers(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    deployment = documents["Deployment"]["spec"]["template"]["spec"]
    cronjob = documents["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pods = {"deployment": deployment, "cronjob": cronjob}
    return {
        f"{pod}/{container['name']}": container
        for pod, spec in pods.items()
        for container in spec.get("initContainers", []) + spec["containers"]
    }


def test_servers_and_the_drift_cronjob_read_the_same_settings_and_credentials() -> None:
    documents = _k8s()
    config, secret = documents["ConfigMap"], documents["Secret"]
    assert set(config["data"]) | set(secret["stringData"]) <= SETTINGS
    # A private mirror's credentials are in its URL: the index URLs belong in the Secret.
    assert {"LOCKD_DATABASE_URL", "LOCKD_INDEX_URL", "LOCKD_PYTORCH_INDEX_URL", "LOCKD_WEBHOOK_URL"} <= set(
        secret["stringData"]
    )
    expected = [
        {"configMapRef": {"name": config["metadata"]["name"]}},
        {"secretRef": {"name": secret["metadata"]["name"]}},
    ]
    containers = _containers(documents)
    assert {"deployment/migrate", "deployment/lockd", "cronjob/drift"} <= set(containers)
    for name, container in containers.items():
        assert container["envFrom"] == expected, name
        overridden = [v["name"] for v in container.get("env", []) if v["name"].startswith("LOCKD_")]
        assert not overridden, f"{name} sets {overridden} apart from the shared settings"


def _commands(text: str) -> list[str]:
    """Shell commands in `text` with backslash continuations joined (comment markers dropped)."""
    commands: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip().lstrip("#").strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "docs/ci-and-docker.md",
        "docker-compose.yml",
        "api/examples/Dockerfile",
        "api/examples/ci-lock.sh",
        "api/examples/github-actions.yml",
    ],
)
def test_every_example_that_locks_sends_a_token(path: str) -> None:
    calls = [c for c in _commands((ROOT / path).read_text()) if "curl" in c and re.search(r"/lock\?", c)]
    assert calls, f"{path} has no curl call to /lock"
    for call in calls:
        assert "Authorization: Bearer" in call or '"${auth[@]}"' in call, f"{path}: {call}"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKD_DRIFT_INTERVAL", "")
    monkeypatch.setenv("LOCKD_WEBHOOK_URL", "")
    monkeypatch.setenv("LOCKD_PUBLIC_URL", "")
    settings = load_settings()
    assert settings.drift_interval is None and settings.webhook_url is None and settings.public_url is None
