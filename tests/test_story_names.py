"""The named-lock story, end to end against a real server (issue 18's acceptance), as a team lives it:

lock `trainer` → add one line → only what that line requires moves (pip-compile with the previous
output agrees) → a drift run finds a yanked pin → a proposal with its diff → CI's `lockd check`
fails on it → promote → `POST /lock` serves the new revision → the input `trainer` left is
retired: out of drift, still served by digest. Each step prints what it saw (`pytest -s`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.peers import parse_pins, pip_compile
from tests.support import ROOT, LockdServer, files_of

TARGET = {"platform": "linux_x86_64", "python": "3.11"}  # the host, so pip-compile can be the oracle
V1 = "lockd-fx-extras\n"
V2 = "lockd-fx-extras\nlockd-fx-speedups\n"  # one line added


def _say(step: str, detail: str) -> None:
    print(f"[story] {step:<9} {detail}")


def _lock(client: httpx.Client, body: str) -> httpx.Response:
    response = client.post(
        "/lock", params={**TARGET, "name": "trainer"}, content=body, headers={"content-type": "text/plain"}
    )
    assert response.status_code in (200, 201), response.text
    assert response.headers["lock-name"] == "trainer"
    return response


def _check(server: LockdServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}
    env.update(LOCKD_TOKEN=server.tokens["read"], PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "lockd", "check", "--server", server.url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_trainer_story(
    start_lockd: Callable[..., LockdServer], database_url: str, mutable_index: Any, tmp_path: Path
) -> None:
    # Page TTL 0: a new lock reads the index as it is now, so only the name's pins can hold one back.
    server = start_lockd(database_url, index=mutable_index, LOCKD_PAGE_TTL="0")
    locker, admin, reader = server.client("lock"), server.client("admin"), server.client("read")

    first = _lock(locker, V1)
    v1_input, v1_lock, v1_text = first.headers["input-digest"], first.headers["lock-digest"], first.text
    v1 = parse_pins(v1_text)
    _say("lock", f"trainer r{first.headers['lock-revision']}: {v1}")

    mutable_index.publish("lockd-fx-plain", "1.2")  # a newer transitive pin, which nobody asked for
    second = _lock(locker, V2)
    v2_input, v2 = second.headers["input-digest"], parse_pins(second.text)
    moved = {name: (v1.get(name), version) for name, version in v2.items() if v1.get(name) != version}
    _say("add line", f"+lockd-fx-speedups moved only {moved}")
    assert moved == {"lockd-fx-speedups": (None, "0.3")}
    oracle = pip_compile(V2, mutable_index.pypi_url, tmp_path, previous=v1_text)
    _say("oracle", f"pip-compile with the previous output: {oracle}")
    assert oracle == v2
    provenance = reader.get("/v1/names/trainer").json()["provenance"]
    assert provenance["preferences"] == v1 and provenance["preferred_lock_digest"] == v1_lock

    for filename in files_of(mutable_index, "lockd-fx-plain", "1.1"):
        mutable_index.yank(filename, "broken wheel")
    run = admin.post("/v1/drift/runs", params={"wait": "true"})
    assert run.status_code == 200, run.text
    checked = [lock["input_digest"] for lock in run.json()["locks"]]
    _say(
        "drift",
        f"run {run.json()['run']['id']} checked {len(checked)} lock(s): {run.json()['run']['counts']}",
    )
    assert checked == [v2_input], "the input trainer left is retired: out of drift"

    status = reader.get("/v1/names/trainer/status").json()
    kinds = sorted({finding["kind"] for finding in status["drift"]["findings"]})
    proposal = status["proposal"]
    changes = [(c["name"], c["old_version"], c["new_version"], c["reasons"]) for c in proposal["changes"]]
    _say("proposal", f"#{proposal['id']} from {proposal['source']}: {changes}")
    assert "yanked" in kinds
    assert changes == [("lockd-fx-plain", "1.1", "1.2", ["yanked", "newer"])]
    assert _lock(locker, V2).headers["lock-revision"] == "1"  # nothing moves until promoted

    gate = _check(server, "--name", "trainer", "--fail-on", "yanked,tampered")
    _say("ci", f"lockd check --fail-on yanked,tampered → exit {gate.returncode}")
    assert gate.returncode == 3, gate.stderr
    assert "yanked" in gate.stderr and f"open proposal {proposal['id']}" in gate.stderr
    refused = _check(server, "--name", "trainer", "--fail-on", "current")
    assert refused.returncode == 2 and "current" in refused.stderr

    promoted = locker.post(f"/v1/names/trainer/proposals/{proposal['id']}/promote")
    assert promoted.status_code == 200, promoted.text
    _say(
        "promote",
        f"#{proposal['id']} → revision {promoted.json()['revision']} by {promoted.json()['decided_by']}",
    )
    served = _lock(locker, V2)
    _say("serve", f"POST /lock: r{served.headers['lock-revision']} {parse_pins(served.text)}")
    assert served.headers["lock-revision"] == "2" and parse_pins(served.text)["lockd-fx-plain"] == "1.2"
    stale = locker.post(f"/v1/names/trainer/proposals/{proposal['id']}/promote")
    assert stale.status_code == 409 and stale.json()["code"] == "stale-proposal"
    gate = _check(server, "--name", "trainer", "--fail-on", "yanked,tampered")
    assert gate.returncode == 0, gate.stderr  # revision 2 has no verdict yet: nothing to fail on

    old = reader.get(f"/v1/locks/{v1_input}/status").json()
    blob = reader.get(f"/v1/blobs/{v1_lock}/requirements.txt")
    _say(
        "retired", f"{v1_input[:12]} retired={old['retired']}, still served by digest: {blob.text == v1_text}"
    )
    assert old["retired"] and blob.text == v1_text
    history = [(e["action"], e["revision"]) for e in reader.get("/v1/names/trainer/history").json()["events"]]
    _say("history", f"{history}")
    assert history == [("created", 1), ("moved", 1), ("promoted", 2)]
    for client in (locker, admin, reader):
        client.close()
