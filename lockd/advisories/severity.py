"""How severe an advisory is: the CVSS v3.x base score of its vector, else its database's rating.

OSV carries severity as vectors (`severity: [{type: CVSS_V3, score: "CVSS:3.1/AV:N/…"}]`), not
numbers; the base score is computed here by the formulas of the CVSS v3.1 specification, section
7 (https://www.first.org/cvss/v3.1/specification-document), and rated none/low/medium/high/
critical by its table 14. CVSS v4 and v2 vectors are kept but not scored (v4's score is a lookup
over a 270-entry table of macro vectors, not a formula); such advisories take their level from
`database_specific.severity` (the GitHub Advisory Database's LOW / MODERATE / HIGH / CRITICAL)
when the data has one, and have no level otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "SEVERITY_LEVELS",
    "Severity",
    "SeverityLevel",
    "cvss3_base_score",
    "level_of_score",
    "severity_of",
]

SeverityLevel = Literal["low", "medium", "high", "critical"]
# Least severe first: a policy "refuse at high or above" is `SEVERITY_LEVELS.index(level) >= 2`.
SEVERITY_LEVELS: tuple[SeverityLevel, ...] = get_args(SeverityLevel)

_DATABASE_LEVELS: Mapping[str, SeverityLevel] = {
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_VECTOR_PREFERENCE = ("CVSS_V4", "CVSS_V3", "CVSS_V2")
# Privileges Required weighs more when the scope changes (specification table 16).
_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


@dataclass(frozen=True, slots=True, kw_only=True)
class Severity:
    """What the advisory data says about severity; any field may be unknown."""

    level: SeverityLevel | None
    score: float | None  # CVSS v3.x base score, 0.0-10.0
    vector: str | None  # the vector the score came from, or the only one the data had

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "score": self.score, "vector": self.vector}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Severity:
        level = data.get("level")
        score = data.get("score")
        return cls(
            level=level if level in SEVERITY_LEVELS else None,
            score=None if score is None else float(score),
            vector=data.get("vector"),
        )

    def at_least(self, level: SeverityLevel) -> bool:
        """True when the level is known and not below `level` (for "refuse at high" policies)."""
        return self.level is not None and SEVERITY_LEVELS.index(self.level) >= SEVERITY_LEVELS.index(level)


def _roundup(value: float) -> float:
    """CVSS v3.1 Appendix A: the smallest one-decimal number ≥ value, free of float noise."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The base score of a `CVSS:3.0/…` or `CVSS:3.1/…` vector; None when it is not one."""
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition(":")
        metrics[key] = value
    try:
        scope = metrics["S"]
        privileges = _PRIVILEGES[scope][metrics["PR"]]
        weight = {key: _WEIGHTS[key][metrics[key]] for key in _WEIGHTS}
    except KeyError:
        return None
    impact_subscore = 1 - (1 - weight["C"]) * (1 - weight["I"]) * (1 - weight["A"])
    if scope == "U":
        impact = 6.42 * impact_subscore
    else:
        impact = 7.52 * (impact_subscore - 0.029) - 3.25 * (impact_subscore - 0.02) ** 15
    exploitability = 8.22 * weight["AV"] * weight["AC"] * privileges * weight["UI"]
    if impact <= 0:
        return 0.0
    if scope == "U":
        return _roundup(min(impact + exploitability, 10.0))
    return _roundup(min(1.08 * (impact + exploitability), 10.0))


def level_of_score(score: float) -> SeverityLevel | None:
    """CVSS v3.1 table 14; a score of 0.0 is "none", which is no level."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return None


def _vector_rank(pair: tuple[str, str]) -> int:
    """Which unscored vector to show: the newest CVSS version first, other kinds last."""
    kind = pair[0]
    return _VECTOR_PREFERENCE.index(kind) if kind in _VECTOR_PREFERENCE else len(_VECTOR_PREFERENCE)


def severity_of(vectors: Iterable[tuple[str, str]], database_level: str | None) -> Severity | None:
    """From OSV `(type, score)` pairs and a database's own rating; None when the data has neither."""
    kept = [(kind, vector) for kind, vector in vectors if vector]
    for kind, vector in kept:
        if kind == "CVSS_V3":
            score = cvss3_base_score(vector)
            if score is not None:
                return Severity(level=level_of_score(score), score=score, vector=vector)
    level = None if database_level is None else _DATABASE_LEVELS.get(database_level.strip().lower())
    ranked = sorted(kept, key=_vector_rank)
    shown = ranked[0][1] if ranked else None
    if level is None and shown is None:
        return None
    return Severity(level=level, score=None, vector=shown)
