"""Which pinned versions of a lock known advisories affect, from OSV-schema data.

One job in small rooms:

* `model` — an OSV record as an immutable `Advisory` (`parse_osv`, exact `to_json`/`from_json`);
* `severity` — CVSS v3.x base scores and levels;
* `ranges` — does an affected entry cover a version (OSV evaluation, PEP 440 ordering);
* `source` — the `AdvisorySource` protocol and `AdvisoriesUnavailable`;
* `directory` — a tree of OSV YAML/JSON files as a source (`LOCKD_ADVISORIES_DIR`);
* `osv_api` — an OSV-compatible HTTP API as a source (`LOCKD_OSV_URL`);
* `findings` — `vulnerabilities(lock, sources)`, one `Vulnerability` per package and advisory.
"""

from __future__ import annotations

from lockd.advisories.directory import AdvisoryDirectory, AdvisoryIndex, SkippedFile, load_advisory_directory
from lockd.advisories.findings import Vulnerability, vulnerabilities
from lockd.advisories.model import (
    Advisory,
    AffectedPackage,
    AffectedRange,
    InvalidAdvisory,
    RangeEvent,
    Reference,
    parse_osv,
)
from lockd.advisories.osv_api import OsvApi
from lockd.advisories.ranges import AffectedVersions, public_version
from lockd.advisories.severity import SEVERITY_LEVELS, Severity, SeverityLevel
from lockd.advisories.source import AdvisoriesUnavailable, AdvisorySource

__all__ = [
    "SEVERITY_LEVELS",
    "AdvisoriesUnavailable",
    "Advisory",
    "AdvisoryDirectory",
    "AdvisoryIndex",
    "AdvisorySource",
    "AffectedPackage",
    "AffectedRange",
    "AffectedVersions",
    "InvalidAdvisory",
    "OsvApi",
    "RangeEvent",
    "Reference",
    "Severity",
    "SeverityLevel",
    "SkippedFile",
    "Vulnerability",
    "load_advisory_directory",
    "parse_osv",
    "public_version",
    "vulnerabilities",
]
