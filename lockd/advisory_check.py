"""The advisory check as lockd runs it: sources from settings, answers per lock, the lock-time policy.

`lockd.advisories` knows which pins advisories affect; this module decides when to ask and what
an answer means for a lock. `AdvisoryCheck.check(lock)` never raises for an unavailable source:
it answers `unavailable` with the reason, so no caller can mistake an outage for "no
advisories". Answers are kept per lock digest for a short while (`LOCKD_ADVISORIES_REFRESH_SECONDS`
bounds it), so serving a stored lock again costs a lookup, not a query.

What a lock's advisories are changes over time while the lock does not, so they are never part
of a rendered file (`lock.json` is the lock's canonical bytes; its sha256 is the lock digest).
They travel beside it: the `Lockd-Advisories` headers of a lock response and
`GET /v1/locks/{input_digest}/advisories`, both computed when asked.

Policy (`LOCKD_REFUSE_ADVISORIES_AT`): `screen(lock)` raises `AdvisoriesRefused` (409, the
advisories in its context) for a new lock with an advisory at or above the level, before
anything is stored. A source that cannot answer does not block locking (the check is
reported unavailable and drift checks again); lockd refuses on evidence, not on an outage.
A refresh is not screened: it replaces a lock already served, and refusing it would keep
serving the older revision, which is no less vulnerable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lockd.advisories import (
    AdvisoriesUnavailable,
    AdvisoryDirectory,
    AdvisorySource,
    OsvApi,
    Vulnerability,
    vulnerabilities,
)
from lockd.config import Settings
from lockd.drift import AdvisoryStatus
from lockd.errors import LockdError
from lockd.lock import Lock
from lockd.memory_cache import BoundedCache
from lockd.periodic import Periodic

__all__ = [
    "OUTAGE_SECONDS",
    "AdvisoriesRefused",
    "AdvisoryCheck",
    "LockAdvisories",
    "RefuseLevel",
    "RunAdvisories",
    "fixed_by",
]

log = logging.getLogger(__name__)

RefuseLevel = Literal["any", "low", "medium", "high", "critical"]
_ANSWERS = 10_000  # locks whose answers are kept
_HEADER_IDS = 64  # ids named in the Lockd-Advisory-Ids header; the rest are behind the link
OUTAGE_SECONDS = 30.0


class AdvisoriesRefused(LockdError):
    """A new lock pins versions with advisories the operator's policy refuses; nothing was stored."""

    code = "advisories-refused"
    status = 409
    title = "The lock has advisories the policy refuses"


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAdvisories:
    """What the advisory sources say about one lock now."""

    lock_digest: str
    status: AdvisoryStatus
    vulnerabilities: tuple[Vulnerability, ...]
    error: str | None  # why the check is unavailable
    sources: tuple[str, ...]

    def headers(self) -> dict[str, str]:
        """`Lockd-Advisories: 2` and `Lockd-Advisory-Ids: PYSEC-…, GHSA-…`; `unavailable`; none when off."""
        if self.status == "off":
            return {}
        if self.status == "unavailable":
            return {"Lockd-Advisories": "unavailable"}
        headers = {"Lockd-Advisories": str(len(self.vulnerabilities))}
        ids = [v.advisory_id for v in self.vulnerabilities]
        if ids:
            shown = ids[:_HEADER_IDS] + (["…"] if len(ids) > _HEADER_IDS else [])
            headers["Lockd-Advisory-Ids"] = ", ".join(shown)
        return headers

    def to_json(self) -> dict[str, Any]:
        return {
            "lock_digest": self.lock_digest,
            "status": self.status,
            "count": len(self.vulnerabilities),
            "advisories": [v.to_json() for v in self.vulnerabilities],
            "error": self.error,
            "sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockAdvisories:
        return cls(
            lock_digest=data["lock_digest"],
            status=data["status"],
            vulnerabilities=tuple(Vulnerability.from_json(v) for v in data["advisories"]),
            error=data["error"],
            sources=tuple(data["sources"]),
        )


def _refused_by(level: RefuseLevel, vulnerability: Vulnerability) -> bool:
    if level == "any":
        return True
    return vulnerability.severity is not None and vulnerability.severity.at_least(level)


def fixed_by(vulnerable: Sequence[Vulnerability], proposed: LockAdvisories) -> tuple[Vulnerability, ...]:
    """Those of `vulnerable` a proposed lock of the same input no longer has.

    One is still there when the proposed lock's answer names the same package with any of its
    ids or aliases (the same vulnerability may come first under another id). Nothing is fixed
    by an answer that is not `checked`: an outage proves nothing.
    """
    if proposed.status != "checked":
        return ()
    remaining: dict[str, set[str]] = {}
    for finding in proposed.vulnerabilities:
        remaining.setdefault(finding.package, set()).update((finding.advisory_id, *finding.aliases))
    return tuple(v for v in vulnerable if not remaining.get(v.package, set()) & {v.advisory_id, *v.aliases})


class AdvisoryCheck:
    """The configured advisory sources, checked per lock. Thread-safe; `close()` when done."""

    def __init__(
        self,
        sources: Sequence[AdvisorySource],
        *,
        refuse_at: RefuseLevel | None = None,
        answer_seconds: float = 300.0,
    ) -> None:
        self.sources = tuple(sources)
        self.refuse_at = refuse_at
        self._answers: BoundedCache[str, LockAdvisories] = BoundedCache(_ANSWERS, ttl=answer_seconds)
        self._refresher: Periodic | None = None
        self._outage: tuple[float, str] | None = None  # (until, why): a source failed just now

    @classmethod
    def from_settings(cls, settings: Settings) -> AdvisoryCheck:
        """The sources LOCKD_ADVISORIES_DIR and LOCKD_OSV_URL name; none is an `off` check.

        Nothing is read yet: the directory loads on first use or first refresh.
        """
        sources: list[AdvisorySource] = []
        if settings.advisories_dir is not None:
            sources.append(AdvisoryDirectory(settings.advisories_dir))
        if settings.osv_url is not None:
            sources.append(
                OsvApi(
                    settings.osv_url,
                    timeout=settings.osv_timeout,
                    deadline=settings.osv_deadline,
                    max_response_bytes=settings.osv_max_response_bytes,
                    answer_ttl=settings.advisories_refresh_seconds,
                )
            )
        return cls(
            sources,
            refuse_at=settings.refuse_advisories_at,
            answer_seconds=settings.advisories_refresh_seconds,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def _off(self, lock_digest: str) -> LockAdvisories:
        return LockAdvisories(
            lock_digest=lock_digest, status="off", vulnerabilities=(), error=None, sources=()
        )

    def _answer(self, lock: Lock) -> LockAdvisories:
        described = tuple(source.description for source in self.sources)
        try:
            found = vulnerabilities(lock, self.sources)
        except AdvisoriesUnavailable as exc:
            log.warning("advisory check unavailable for lock %s: %s", lock.digest[:12], exc.message)
            return self.unavailable(lock, exc.message)
        return LockAdvisories(
            lock_digest=lock.digest, status="checked", vulnerabilities=found, error=None, sources=described
        )

    def check(self, lock: Lock) -> LockAdvisories:
        """The lock's advisories, from the answers kept for a while or asked now; may block on a source.

        For `OUTAGE_SECONDS` after a source could not answer, locks are answered `unavailable`
        without asking: a hanging API would otherwise hold every new lock for its deadline.
        """
        if not self.sources:
            return self._off(lock.digest)
        cached = self._answers.get(lock.digest)
        if cached is not None:
            return cached
        outage = self._outage
        if outage is not None and time.monotonic() < outage[0]:
            return self.unavailable(lock, outage[1])
        return self.check_now(lock)

    def check_now(self, lock: Lock) -> LockAdvisories:
        """Ask the sources now (a drift run does, so an answer kept from before never stands in)."""
        if not self.sources:
            return self._off(lock.digest)
        answer = self._answer(lock)
        if answer.status == "unavailable":
            self._outage = (time.monotonic() + OUTAGE_SECONDS, answer.error or "unavailable")
        else:
            self._outage = None
            self._answers.put(lock.digest, answer)
        return answer

    def unavailable(self, lock: Lock, error: str) -> LockAdvisories:
        """The answer for a lock the sources could not be asked about, and why."""
        described = tuple(source.description for source in self.sources)
        return LockAdvisories(
            lock_digest=lock.digest, status="unavailable", vulnerabilities=(), error=error, sources=described
        )

    def cached(self, lock_digest: str) -> LockAdvisories | None:
        """A kept answer, or the `off` answer when no source is configured; never blocks."""
        if not self.sources:
            return LockAdvisories(
                lock_digest=lock_digest, status="off", vulnerabilities=(), error=None, sources=()
            )
        return self._answers.get(lock_digest)

    def screen(self, lock: Lock) -> LockAdvisories:
        """The check of a new lock, raising `AdvisoriesRefused` when the policy refuses it."""
        answer = self.check(lock)
        if self.refuse_at is None:
            return answer
        refused = [v for v in answer.vulnerabilities if _refused_by(self.refuse_at, v)]
        if not refused:
            return answer
        level = "any severity" if self.refuse_at == "any" else f"{self.refuse_at} severity or above"
        named = ", ".join(f"{v.package} {v.version} ({v.advisory_id})" for v in refused[:10])
        raise AdvisoriesRefused(
            f"the lock pins {len(refused)} version(s) with advisories of {level}: {named}",
            hint="require versions past the fixed ones listed in context.advisories, "
            "or ask the operator about LOCKD_REFUSE_ADVISORIES_AT",
            context={
                "refuse_at": self.refuse_at,
                "lock_digest": lock.digest,
                "advisories": [v.to_json() for v in refused],
            },
        )

    def for_run(self) -> RunAdvisories:
        return RunAdvisories(self)

    # -- keeping the directory current ----------------------------------------------------

    def refresh(self) -> bool:
        """Re-read each advisory directory whose files changed; True if one did. Never raises."""
        changed = False
        for source in self.sources:
            if not isinstance(source, AdvisoryDirectory):
                continue
            try:
                changed = source.refresh() or changed
            except AdvisoriesUnavailable as exc:
                log.warning("advisory directory not re-read: %s", exc.message)
        if changed:
            self._answers.clear()  # a kept answer may name an advisory that changed or is gone
        return changed

    def start_refreshing(self, every: float) -> None:
        """Load the directory now, in the background, then re-read it every `every` seconds if it changed."""
        if self._refresher is not None or not any(isinstance(s, AdvisoryDirectory) for s in self.sources):
            return
        self._refresher = Periodic("lockd-advisories-refresh", every, self.refresh, first_delay=0.0).start()

    def close(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()
        for source in self.sources:
            if isinstance(source, OsvApi):
                source.close()


class RunAdvisories:
    """One drift run's advisory check: after the first unavailable answer it stops asking.

    A source that is down would otherwise cost its full deadline for every lock of the run.
    Locks checked before the failure keep their findings; the run records `unavailable` and why.
    """

    def __init__(self, check: AdvisoryCheck) -> None:
        self._check = check
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def status(self) -> AdvisoryStatus:
        if not self._check.enabled:
            return "off"
        return "checked" if self.error is None else "unavailable"

    def check(self, lock: Lock) -> LockAdvisories:
        if self.error is not None:
            return self._check.unavailable(lock, self.error)
        answer = self._check.check_now(lock)
        if answer.status == "unavailable":
            with self._lock:
                self.error = self.error or answer.error
        return answer
