"""What an advisory source promises, and the one way it says it could not answer.

A source (a directory of OSV files, an OSV-compatible API) maps pinned versions to the
advisories that affect them. When it cannot answer — the directory is gone, the API is down,
slow, or says something that is not OSV — it raises `AdvisoriesUnavailable`, so a caller can
record "advisory check unavailable" and never mistake it for "no advisories".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.advisories.model import Advisory
from lockd.errors import LockdError

__all__ = ["AdvisoriesUnavailable", "AdvisorySource"]


class AdvisoriesUnavailable(LockdError):
    """An advisory source could not answer; `context["source"]` names it."""

    code = "advisories-unavailable"
    status = 503
    title = "Advisory check unavailable"


class AdvisorySource(Protocol):
    """Pinned versions → the advisories affecting them. Implementations are thread-safe."""

    @property
    def description(self) -> str:
        """`advisory directory /srv/advisory-database`, `OSV API https://api.osv.dev`: for messages."""
        ...

    def affecting(self, pins: Mapping[NormalizedName, Version]) -> dict[NormalizedName, tuple[Advisory, ...]]:
        """For each pin, the advisories that affect its version, withdrawn ones left out.

        Names without advisories may be absent. Raises `AdvisoriesUnavailable`.
        """
        ...
