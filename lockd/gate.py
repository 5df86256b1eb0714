"""The per-lock CI gate, from the client side: `lockd check` asks a server, never the database.

`check_lock` reads `GET /v1/names/{name}/status` (or `/v1/locks/{digest}/status`) with a bearer
token and decides: 0 when the lock's latest drift verdict has none of the kinds to fail on,
3 (`EXIT_GATE`) when it has, 1 for any error (the server unreachable, the name unknown, a
token refused). `current` is not a kind a gate can fail on: it is the absence of findings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from lockd.drift import FindingKind, parse_kinds
from lockd.errors import InvalidRequest, LockdError

__all__ = ["EXIT_GATE", "GateVerdict", "check_lock", "gate_kinds"]

EXIT_GATE = 3
_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GateVerdict:
    tripped: tuple[dict[str, Any], ...]  # the findings of the kinds to fail on
    status: dict[str, Any]  # the server's answer

    @property
    def exit_code(self) -> int:
        return EXIT_GATE if self.tripped else 0


def gate_kinds(text: str) -> frozenset[FindingKind]:
    """The kinds `--fail-on` names; `current` is refused (it is no finding), as is an empty list."""
    kinds = parse_kinds(text)
    if "current" in kinds:
        raise InvalidRequest(
            "--fail-on current would fail every healthy lock: `current` means no findings",
            hint="name finding kinds, e.g. tampered,missing,yanked",
        )
    if not kinds:
        raise InvalidRequest("--fail-on names no finding kind", hint="e.g. --fail-on tampered,missing")
    return kinds


def _status_path(name: str | None, digest: str | None) -> str:
    if (name is None) == (digest is None):
        raise InvalidRequest("give exactly one of --name and --digest")
    if name is not None:
        return f"/v1/names/{name}/status"
    return f"/v1/locks/{digest}/status"


def _fetch(server: str, path: str, token: str | None) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(server.rstrip("/") + path, headers=headers, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        raise LockdError(f"cannot reach {server}: {type(exc).__name__}", hint="check --server") from None
    if response.status_code != 200:
        try:
            problem = response.json()
            detail, hint = str(problem.get("detail", response.text[:300])), problem.get("hint")
        except ValueError:
            detail, hint = response.text[:300], None
        raise LockdError(f"{server} answered {response.status_code}: {detail}", hint=hint)
    body: dict[str, Any] = response.json()
    return body


def check_lock(
    *,
    server: str,
    kinds: Iterable[FindingKind],
    token: str | None,
    name: str | None = None,
    digest: str | None = None,
    out: TextIO,
) -> GateVerdict:
    """Ask the server for the lock's status, print a summary to `out`, and judge it."""
    status = _fetch(server, _status_path(name, digest), token)
    wanted = set(kinds)
    drift = status.get("drift")
    label = name or digest
    print(f"{label}: revision {status['revision']} (lock {status['lock_digest'][:12]})", file=out)
    findings: list[dict[str, Any]] = [] if drift is None else list(drift["findings"])
    if drift is None:
        print(f"{label}: no drift run has checked this revision yet", file=out)
    else:
        print(f"{label}: drift run {drift['run_id']} says {drift['status']}", file=out)
    tripped = tuple(finding for finding in findings if finding["kind"] in wanted)
    for finding in tripped:
        print(f"{finding['kind']}: {finding['message']}", file=out)
    proposal = status.get("proposal")
    if proposal is not None:
        print(f"open proposal {proposal['id']}: {len(proposal['changes'])} change(s)", file=out)
        for change in proposal["changes"]:
            print(
                f"  {change['name']} {change['old_version']} → {change['new_version']} ({', '.join(change['reasons'])})",
                file=out,
            )
        print(f"promote it: {proposal['promote']}", file=out)
    return GateVerdict(tripped=tripped, status=status)
