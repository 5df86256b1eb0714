"""An independent reading of OSV files for the advisory tests.

`simple_affected` is a deliberately plain evaluator written apart from `lockd.advisories`: it
pairs each `introduced` with the nearest end event at or above it, instead of walking sorted
events, and reads the raw records itself. `osv_api` serves the same records through a loopback
OSV-compatible API (`POST /v1/querybatch`, `GET /v1/vulns/{id}`) that answers with that evaluator,
and can be told to fail in the ways a real API does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.advisories import AdvisoryIndex, load_advisory_directory
from lockd.inputs import LockOptions
from lockd.lock import ROOT, Lock, LockedFile, LockedPackage
from lockd.routing import plan_for
from lockd.target import Target
from tests.support import QuietHandler, loopback_http

__all__ = [
    "ADVISORIES_DIR",
    "FIXTURE_DIR",
    "SEVEN_AFFECTED",
    "SEVEN_OUTSIDE",
    "OsvState",
    "by_name",
    "expected_ids",
    "load_records",
    "lock_of",
    "osv_api",
    "simple_affected",
    "snapshot_index",
    "snapshot_records",
]

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "advisories"
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "advisories"
# The full PyPA snapshot (2,600 records) where it exists, else the curated copy in fixtures/.
ADVISORIES_DIR = SNAPSHOT_DIR if (SNAPSHOT_DIR / "vulns").is_dir() else FIXTURE_DIR


# Versions that advisories in the data affect: urllib3 2.0.3 sits in the second interval of
# multi-interval ranges, pillow 9.2.0 at an `introduced` boundary, mlflow 2.9.1 at a `fixed` one,
# aiohttp has a withdrawn advisory, torch is a local (CUDA) build.
SEVEN_AFFECTED = {
    "requests": "2.25.0",
    "urllib3": "2.0.3",
    "jinja2": "2.10",
    "pillow": "9.2.0",
    "aiohttp": "3.8.4",
    "mlflow": "2.9.1",
    "torch": "1.13.0+cu117",
}
SEVEN_OUTSIDE = {
    "requests": "2.32.3",
    "urllib3": "2.2.3",
    "jinja2": "3.1.4",
    "pillow": "10.4.0",
    "aiohttp": "3.10.5",
    "mlflow": "2.16.2",
    "torch": "2.5.1+cu124",
}


def load_records(root: Path) -> dict[str, dict[str, Any]]:
    """id → the raw record, every scalar a string."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*.yaml")):
        record = yaml.load(path.read_bytes(), Loader=yaml.CBaseLoader)
        records.setdefault(record["id"], record)
    return records


def by_name(records: Mapping[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records.values():
        names = {canonicalize_name(a["package"]["name"]) for a in record.get("affected", [])}
        for name in names:
            found.setdefault(name, []).append(record)
    return found


def _intervals(events: list[dict[str, str]]) -> list[tuple[Version | None, Version | None, str]]:
    """(start, end, end kind) for each introduced, its end the nearest fixed/last_affected ≥ it.

    A start of None is `introduced: "0"`, which OSV defines as before every version.
    """
    ends = sorted(
        (Version(v), kind) for e in events for kind, v in e.items() if kind in ("fixed", "last_affected")
    )
    intervals: list[tuple[Version | None, Version | None, str]] = []
    for event in events:
        if "introduced" not in event:
            continue
        start = None if event["introduced"] == "0" else Version(event["introduced"])
        above = [(v, kind) for v, kind in ends if start is None or v >= start]
        intervals.append((start, above[0][0], above[0][1]) if above else (start, None, "open"))
    return intervals


def _in_interval(version: Version, start: Version | None, end: Version | None, kind: str) -> bool:
    if start is not None and version < start:
        return False
    if end is None:
        return True
    return version < end if kind == "fixed" else version <= end


_Reading = tuple[frozenset[Version], list[tuple[Version | None, Version | None, str]]]
_READINGS: dict[tuple[str, str], list[_Reading]] = {}


def _read(record: Mapping[str, Any], name: str) -> list[_Reading]:
    """Each affected entry for `name` as (explicit versions, intervals), parsed once per session:
    the differential test probes every record many times."""
    key = (record["id"], name)
    if key in _READINGS:
        return _READINGS[key]
    readings: list[_Reading] = []
    for entry in record.get("affected", []):
        package = entry["package"]
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package["name"]) != name:
            continue
        listed = set()
        for text in entry.get("versions", []):
            with suppress(InvalidVersion):
                listed.add(Version(text))
        intervals = []
        for affected_range in entry.get("ranges", []):
            if affected_range["type"] != "ECOSYSTEM":
                continue
            try:
                intervals.extend(_intervals(affected_range["events"]))
            except InvalidVersion:
                continue  # a range PEP 440 cannot order says nothing
        readings.append((frozenset(listed), intervals))
    _READINGS[key] = readings
    return readings


def simple_affected(record: Mapping[str, Any], name: str, version: Version) -> bool:
    """Is `version` of `name` affected by `record`? Withdrawn records affect nothing."""
    if record.get("withdrawn"):
        return False
    public = Version(version.public)
    for listed, intervals in _read(record, name):
        if public in listed or any(_in_interval(public, *interval) for interval in intervals):
            return True
    return False


def expected_ids(indexed: Mapping[str, list[dict[str, Any]]], pins: Mapping[str, str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, version in pins.items():
        ids = {r["id"] for r in indexed.get(name, []) if simple_affected(r, name, Version(version))}
        if ids:
            found[name] = ids
    return found


def lock_of(
    pins: Mapping[str, str], *, requirements: list[str] | None = None, constraints: list[str] | None = None
) -> Lock:
    """A lock pinning these versions, each a root requirement (`name==version` unless given)."""
    packages = [
        LockedPackage(
            name=canonicalize_name(name),
            version=Version(version),
            index="https://pypi.org/simple/",
            files=(
                LockedFile(
                    f"{name}-{version}-py3-none-any.whl",
                    f"https://files.example/{name}",
                    "0" * 64,
                    1,
                    "wheel",
                ),
            ),
            dependencies=(),
            via=(ROOT,),
        )
        for name, version in pins.items()
    ]
    target = Target.of("linux_x86_64", "3.11")
    return Lock.build(
        input_digest="1" * 64,
        target=target,
        plan=plan_for(target),
        requirements=requirements if requirements is not None else [f"{n}=={v}" for n, v in pins.items()],
        constraints=constraints or [],
        options=LockOptions(),
        packages=packages,
    )


@dataclass
class OsvState:
    """What the loopback API serves, how it misbehaves, and what it was asked."""

    records: Mapping[str, dict[str, Any]]
    indexed: Mapping[str, list[dict[str, Any]]]
    page_size: int | None = None
    fault: str | None = None  # error | hang | oversize | garbage | wrong-id
    requests: list[str] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, query: Mapping[str, Any]) -> dict[str, Any]:
        name = canonicalize_name(query["package"]["name"])
        matching = sorted(
            r["id"] for r in self.indexed.get(name, []) if simple_affected(r, name, Version(query["version"]))
        )
        start = int(query.get("page_token") or 0)
        end = len(matching) if self.page_size is None else start + self.page_size
        result: dict[str, Any] = {}
        if matching[start:end]:
            result["vulns"] = [
                {"id": i, "modified": self.records[i].get("modified", "")} for i in matching[start:end]
            ]
        if end < len(matching):
            result["next_page_token"] = str(end)
        return result


class OsvHandler(QuietHandler):
    def __init__(self, *args: Any, state: OsvState, **kwargs: Any) -> None:
        self.state = state
        super().__init__(*args, **kwargs)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _faulted(self) -> bool:
        fault = self.state.fault
        if fault == "error":
            self._send(500, b'{"code": 13, "message": "internal"}')
        elif fault == "hang":
            self.state.release.wait(10)
            self._send(200, b"{}")
        elif fault == "oversize":
            self._send(200, b'{"results": [], "padding": "' + b"x" * 100_000 + b'"}')
        elif fault == "garbage":
            self._send(200, b"<html>maintenance</html>")
        return fault in ("error", "hang", "oversize", "garbage")

    def do_POST(self) -> None:
        self.state.requests.append(f"POST {self.path}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.state.queries.extend(body.get("queries", []))
        if self._faulted():
            return
        if self.path != "/v1/querybatch":
            self._send(404, b"{}")
            return
        results = [self.state.answer(q) for q in body["queries"]]
        self._send(200, json.dumps({"results": results}).encode())

    def do_GET(self) -> None:
        self.state.requests.append(f"GET {self.path}")
        if self._faulted():
            return
        advisory_id = self.path.removeprefix("/v1/vulns/")
        record = self.state.records.get(advisory_id)
        if record is None:
            self._send(404, b'{"code": 5, "message": "Bug not found."}')
            return
        if self.state.fault == "wrong-id":
            record = {**record, "id": "PYSEC-0000-0"}
        self._send(200, json.dumps(record).encode())


@contextmanager
def osv_api(state: OsvState) -> Iterator[str]:
    """The loopback OSV API for `state`; yields its base URL."""
    with loopback_http(partial(OsvHandler, state=state)) as host:
        try:
            yield f"http://{host}"
        finally:
            state.release.set()  # a handler told to hang returns before the server shuts down


@cache
def snapshot_records() -> dict[str, dict[str, Any]]:
    """The raw records of ADVISORIES_DIR, read once per test session."""
    return load_records(ADVISORIES_DIR)


@cache
def snapshot_index() -> AdvisoryIndex:
    """lockd's index of ADVISORIES_DIR, loaded once per test session."""
    return load_advisory_directory(ADVISORIES_DIR)
