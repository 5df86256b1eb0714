"""The drift webhook: after a run, tell people which locks (by name) need them, and why.

The body names every lock with findings other than `current` or with an open proposal: its
names, each finding's kind, package and message, the proposal's changes and the URL that
promotes it, and links to the dashboard under LOCKD_PUBLIC_URL. LOCKD_WEBHOOK_FORMAT=slack
sends the same as a Slack message (`text` and mrkdwn blocks) instead of lockd's JSON. A
webhook is sent when a run finds an alerting kind (`lockd.drift.ALERT_KINDS`: a newer release
alone pages nobody, its proposal waits on the dashboard); it is never fatal, and only its
origin is logged (a webhook's path is often its secret).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from lockd.drift import ALERT_KINDS, Finding
from lockd.drift_views import DriftRunView
from lockd.proposals import ProposalView
from lockd.service import Service
from lockd.store import drift as drift_rows
from lockd.store import names as name_rows
from lockd.store import proposals as proposal_rows
from lockd.store import transaction

__all__ = ["LockAlert", "notify", "webhook_body"]

log = logging.getLogger(__name__)

_TIMEOUT = 10.0
_SLACK_LOCKS = 20  # Slack caps a message at 50 blocks


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAlert:
    """One lock a person should look at after a run."""

    input_digest: str
    names: tuple[str, ...]
    revision: int
    status: str
    findings: tuple[Finding, ...]
    proposal: ProposalView | None


def _alerts(service: Service, run_id: int) -> list[LockAlert]:
    with transaction(service.engine, write=False) as conn:
        results = drift_rows.list_results(conn, run_id)
        findings: dict[str, list[Finding]] = {}
        for digest, finding in drift_rows.run_findings(conn, run_id):
            findings.setdefault(digest, []).append(finding)
        alerts = []
        for result in results:
            digest = result.input_digest
            proposal = proposal_rows.open_proposal(conn, digest)
            if result.status == "current" and proposal is None:
                continue
            alerts.append(
                LockAlert(
                    input_digest=digest,
                    names=tuple(record.name for record in name_rows.live_names_for_input(conn, digest)),
                    revision=result.revision,
                    status=result.status,
                    findings=tuple(f for f in findings.get(digest, []) if f.kind != "current"),
                    proposal=None if proposal is None else ProposalView.of(proposal),
                )
            )
    return alerts


def _links(base: str, alert: LockAlert) -> dict[str, str]:
    where = f"/dashboard/names/{alert.names[0]}" if alert.names else f"/dashboard/locks/{alert.input_digest}"
    links = {"dashboard": base + where}
    if alert.proposal is not None:
        owner = f"/v1/names/{alert.names[0]}" if alert.names else f"/v1/locks/{alert.input_digest}"
        links["promote"] = f"{base}{owner}/proposals/{alert.proposal.id}/promote"
        links["proposal"] = f"{base}/dashboard/proposals/{alert.proposal.id}"
    return links


def _lock_json(base: str, alert: LockAlert) -> dict[str, Any]:
    proposal = alert.proposal
    return {
        "names": list(alert.names),
        "input_digest": alert.input_digest,
        "revision": alert.revision,
        "status": alert.status,
        "findings": [
            {"kind": f.kind, "package": f.package, "filename": f.filename, "message": f.message}
            for f in alert.findings
        ],
        "proposal": None
        if proposal is None
        else {
            "id": proposal.id,
            "source": proposal.source,
            "changes": [c.to_json() for c in proposal.diff.changes],
        },
        "links": _links(base, alert),
    }


def _slack(run: DriftRunView, base: str, alerts: list[LockAlert]) -> dict[str, Any]:
    counts = ", ".join(f"{n} {kind}" for kind, n in run.counts.items() if n)
    text = f"lockd drift run {run.id}: {counts}"
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    for alert in alerts[:_SLACK_LOCKS]:
        label = ", ".join(alert.names) or alert.input_digest[:12]
        links = _links(base, alert)
        lines = [f"*<{links['dashboard']}|{label}>* (revision {alert.revision}): {alert.status}"]
        lines += [f"• {f.kind}: {f.message}" for f in alert.findings[:10]]
        if alert.proposal is not None:
            changes = "; ".join(c.describe() for c in alert.proposal.diff.changes[:10])
            lines.append(f"• proposal <{links['proposal']}|{alert.proposal.id}>: {changes}")
            lines.append(f"  promote: `curl -X POST -H 'Authorization: Bearer …' {links['promote']}`")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
    if len(alerts) > _SLACK_LOCKS:
        more = f"and {len(alerts) - _SLACK_LOCKS} more locks: <{base}/dashboard|dashboard>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": more}})
    return {"text": text, "blocks": blocks}


def webhook_body(service: Service, run: DriftRunView) -> dict[str, Any] | None:
    """What the webhook receives after `run`, or None when nothing needs a person."""
    alert_kinds = sorted(kind for kind in ALERT_KINDS if run.counts[kind])
    if not alert_kinds:
        return None
    alerts = _alerts(service, run.id)
    base = (service.settings.public_url or "").rstrip("/")
    if service.settings.webhook_format == "slack":
        return _slack(run, base, alerts)
    return {
        "event": "lockd.drift",
        "alert_kinds": alert_kinds,
        **run.to_json(),
        "dashboard": f"{base}/dashboard",
        "locks": [_lock_json(base, alert) for alert in alerts],
    }


def notify(service: Service, run: DriftRunView) -> None:
    """POST the run's webhook body to LOCKD_WEBHOOK_URL, if one is set and something needs a person."""
    url = service.settings.webhook_url
    if url is None:
        return
    body = webhook_body(service, run)
    if body is None:
        return
    origin = httpx.URL(url).copy_with(userinfo=b"", path="/", query=None, fragment=None)
    try:
        response = httpx.post(url, json=body, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        log.warning("drift webhook %s failed: %s", origin, type(exc).__name__)
        return
    if response.status_code >= 400:
        log.warning("drift webhook %s answered HTTP %d", origin, response.status_code)
    else:
        log.info("drift webhook delivered for run %s", run.id)
