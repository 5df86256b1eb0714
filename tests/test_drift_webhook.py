"""The drift webhook with substance: the locks by name, each finding's kind and package, the open
proposal with the URL that promotes it, dashboard links under LOCKD_PUBLIC_URL; and Slack's format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lockd.config import Settings
from lockd.drift_runs import DriftRuns
from lockd.names import Names
from lockd.service import Service
from tests.support import QuietHandler, files_of, loopback_http

TARGET = {"platform": "linux_x86_64", "python": "3.11"}


@pytest.fixture
def received() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    class Receiver(QuietHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    with loopback_http(Receiver) as host:
        yield f"http://{host}/hook", bodies


def _service(database_url: str, index: Any, url: str, **overrides: Any) -> Service:
    settings = Settings(
        database_url=database_url,
        index_url=index.pypi_url,
        pytorch_index_url=index.pytorch_base,
        webhook_url=url,
        public_url="https://lockd.example",
        **overrides,
    )
    return Service.open(settings)


def _drift_a_named_lock(service: Service, index: Any) -> str:
    names = Names(service)
    locked = names.lock(
        service.build_request(requirements="lockd-fx-speedups\nlockd-fx-plain\n", target=TARGET),
        name="ml/trainer",
    )
    (wheel,) = files_of(index, "lockd-fx-speedups", "0.3")
    index.replace_content(wheel)  # tampered: an alert
    index.publish("lockd-fx-plain", "1.2")  # newer: the fresh resolution differs, so a proposal
    run = DriftRuns(service).run()
    assert run is not None and run.counts["tampered"] == 1
    return locked.result.input_digest


def test_the_webhook_names_locks_findings_and_proposals(
    database_url: str, mutable_index: Any, received: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = received
    service = _service(database_url, mutable_index, url)
    try:
        digest = _drift_a_named_lock(service, mutable_index)
    finally:
        service.close()
    (body,) = bodies
    assert body["event"] == "lockd.drift" and body["alert_kinds"] == ["tampered"]
    assert body["dashboard"] == "https://lockd.example/dashboard"
    (lock,) = body["locks"]
    assert lock["names"] == ["ml/trainer"] and lock["input_digest"] == digest and lock["status"] == "tampered"
    kinds = {(f["kind"], f["package"]) for f in lock["findings"]}
    assert kinds == {("tampered", "lockd-fx-speedups"), ("outdated", "lockd-fx-plain")}
    proposal = lock["proposal"]
    assert [(c["name"], c["change"], c["reasons"]) for c in proposal["changes"]] == [
        ("lockd-fx-plain", "upgrade", ["newer"]),
        ("lockd-fx-speedups", "hashes", ["tampered", "files"]),
    ]
    assert lock["links"] == {
        "dashboard": "https://lockd.example/dashboard/names/ml/trainer",
        "promote": f"https://lockd.example/v1/names/ml/trainer/proposals/{proposal['id']}/promote",
        "proposal": f"https://lockd.example/dashboard/proposals/{proposal['id']}",
    }


def test_the_webhook_in_slacks_format(
    database_url: str, mutable_index: Any, received: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = received
    service = _service(database_url, mutable_index, url, webhook_format="slack")
    try:
        _drift_a_named_lock(service, mutable_index)
    finally:
        service.close()
    (body,) = bodies
    assert body["text"].startswith("lockd drift run ")
    sections = [block["text"]["text"] for block in body["blocks"]]
    assert "<https://lockd.example/dashboard/names/ml/trainer|ml/trainer>" in sections[1]
    assert "tampered:" in sections[1] and "/promote" in sections[1]
