"""The tables of lockd, as SQLAlchemy Core metadata (the migrations must match them).

Digests are 64 lowercase hex characters, enforced by CHECK constraints written so that
SQLite and PostgreSQL both understand them (`ltrim(x, chars)` exists in both).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from lockd.drift import ADVISORY_STATUSES, CHANGE_KINDS, FINDING_KINDS
from lockd.limits import (
    CUDA_CHARS,
    PACKAGE_NAME_CHARS,
    PLATFORM_CHARS,
    PYTHON_CHARS,
    TOKEN_NAME_CHARS,
    VERSION_CHARS,
)
from lockd.lock_diff import AUTO_PROMOTE

__all__ = [
    "NAME_ACTIONS",
    "NAME_STATUSES",
    "PROPOSAL_SOURCES",
    "PROPOSAL_STATUSES",
    "dist_metadata",
    "drift_batches",
    "drift_findings",
    "drift_lease",
    "drift_results",
    "drift_runs",
    "file_hashes",
    "inputs",
    "lock_files",
    "lock_packages",
    "lock_provenance",
    "locks",
    "metadata",
    "name_events",
    "names",
    "proposals",
    "resolution_leases",
    "retired_inputs",
    "revisions",
    "tokens",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _digest_check(column: str, name: str | None = None) -> CheckConstraint:
    return CheckConstraint(
        f"length({column}) = 64 AND ltrim({column}, '0123456789abcdef') = ''",
        name=name or f"{column}_hex",
    )


def _digest(name: str, *args: object, **kwargs: object) -> Column[str]:
    return Column(name, String(64), *args, **kwargs)  # type: ignore[arg-type]


inputs = Table(
    "inputs",
    metadata,
    _digest("digest", primary_key=True),
    Column("canonical", Text, nullable=False),
    Column("platform", String(PLATFORM_CHARS), nullable=False),
    Column("python", String(PYTHON_CHARS), nullable=False),
    Column("cuda", String(CUDA_CHARS), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    _digest_check("digest"),
    Index(None, "platform", "python", "cuda"),
)

locks = Table(
    "locks",
    metadata,
    _digest("digest", primary_key=True),
    _digest("input_digest", ForeignKey("inputs.digest"), nullable=False),
    Column("canonical", LargeBinary, nullable=False),
    Column("package_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    _digest_check("digest"),
    _digest_check("input_digest"),
)

lock_packages = Table(
    "lock_packages",
    metadata,
    _digest("lock_digest", ForeignKey("locks.digest"), primary_key=True),
    Column("name", String(PACKAGE_NAME_CHARS), primary_key=True),
    Column("version", String(VERSION_CHARS), nullable=False),
    Index(None, "name"),
)

lock_files = Table(
    "lock_files",
    metadata,
    _digest("lock_digest", ForeignKey("locks.digest"), primary_key=True),
    Column("format", String(32), primary_key=True),
    _digest("sha256", nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("content", LargeBinary, nullable=False),
    _digest_check("sha256"),
)

revisions = Table(
    "revisions",
    metadata,
    _digest("input_digest", ForeignKey("inputs.digest"), primary_key=True),
    Column("n", Integer, primary_key=True),
    _digest("lock_digest", ForeignKey("locks.digest"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("reason", String(32), nullable=False),
    CheckConstraint("n >= 1", name="n_positive"),
    Index(None, "lock_digest"),
)

# Core metadata by the identity of its file on its index (`lockd.index.MetadataKey`): `key` is
# the sha256 of (page_url, filename, sha256), the columns say what it is of. Never by the
# claimed sha256 alone: that let one index's metadata answer for another's file.
dist_metadata = Table(
    "dist_metadata",
    metadata,
    _digest("key", primary_key=True),
    Column("page_url", Text, nullable=False),
    Column("filename", Text, nullable=False),
    _digest("sha256", nullable=False),
    Column("metadata", LargeBinary, nullable=False),
    _digest_check("key"),
    _digest_check("sha256"),
)

file_hashes = Table(
    "file_hashes",
    metadata,
    Column("key", String(2048), primary_key=True),
    _digest("sha256", nullable=False),
    _digest_check("sha256"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(TOKEN_NAME_CHARS), nullable=False),
    _digest("token_hash", nullable=False, unique=True),
    Column("scopes", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),  # migration 0003
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # Comma-separated name patterns (`vision/*`) the token is limited to; NULL: any name (0004).
    Column("name_prefixes", String(1000), nullable=True),
    _digest_check("token_hash"),
)

# Single-flight: one row per input digest being resolved. `expires_at` is epoch seconds so
# both databases compare it as a number; a failed holder leaves its error for the waiters.
resolution_leases = Table(
    "resolution_leases",
    metadata,
    _digest("input_digest", primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("expires_at", Float, nullable=False),
    CheckConstraint("state IN ('running', 'failed')", name="state_known"),
)

# -- drift (migration 0002_drift; owned by the drift issue) ------------------------------
# A run row is written when the run starts and finished in one update at the end, so a run
# cut short by a crash stays `running` with a stale heartbeat until the next run marks it
# `abandoned`; readers treat a stale `running` row as abandoned too, never as complete.
_FINDING_KINDS = ", ".join(f"'{kind}'" for kind in FINDING_KINDS)
_CHANGE_KINDS = ", ".join(f"'{change}'" for change in CHANGE_KINDS)
_ADVISORY_STATUSES = ", ".join(f"'{status}'" for status in ADVISORY_STATUSES)

drift_runs = Table(
    "drift_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("holder", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("scheduled_for", DateTime(timezone=True), nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("locks_total", Integer, nullable=False),
    Column("locks_checked", Integer, nullable=False),
    # One count per finding kind (a new kind needs a migration adding its column); counts added
    # after the first runs default to 0 so earlier runs read as having found none.
    *(
        Column(f"n_{kind}", Integer, nullable=False, server_default="0")
        if kind == "vulnerable"
        else Column(f"n_{kind}", Integer, nullable=False)
        for kind in FINDING_KINDS
    ),
    Column("error", Text, nullable=True),
    # The advisory check of the run (NULL for runs before migration 0004) and why it failed.
    Column("advisories", String(16), nullable=True),
    Column("advisories_error", Text, nullable=True),
    CheckConstraint("status IN ('running', 'complete', 'failed', 'abandoned')", name="status_known"),
    CheckConstraint(f"advisories IN ({_ADVISORY_STATUSES})", name="advisories_known"),
    Index(None, "started_at"),
    Index(None, "scheduled_for"),
)

# The verdict on one lock (the input's current revision when the run checked it).
drift_results = Table(
    "drift_results",
    metadata,
    Column("run_id", Integer, ForeignKey("drift_runs.id"), primary_key=True),
    _digest("input_digest", ForeignKey("inputs.digest"), primary_key=True),
    Column("revision", Integer, nullable=False),
    _digest("lock_digest", ForeignKey("locks.digest"), nullable=False),
    Column("status", String(16), nullable=False),
    _digest("fresh_lock_digest", nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("advisories", String(16), nullable=True),  # whether this lock's advisory check ran
    CheckConstraint(f"status IN ({_FINDING_KINDS})", name="status_known"),
    CheckConstraint(f"advisories IN ({_ADVISORY_STATUSES})", name="advisories_known"),
    Index(None, "input_digest"),
    Index(None, "status"),
)

drift_findings = Table(
    "drift_findings",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("drift_runs.id"), nullable=False),
    _digest("input_digest", ForeignKey("inputs.digest"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("package", String(200), nullable=True),
    Column("filename", String(500), nullable=True),
    Column("old_version", String(100), nullable=True),
    Column("new_version", String(100), nullable=True),
    _digest("old_sha256", nullable=True),
    _digest("new_sha256", nullable=True),
    Column("change", String(16), nullable=True),
    Column("code", String(64), nullable=True),
    Column("message", Text, nullable=False),
    Column("advisory", Text, nullable=True),  # a `vulnerable` finding's Vulnerability as JSON
    CheckConstraint(f"kind IN ({_FINDING_KINDS})", name="kind_known"),
    CheckConstraint(f"change IN ({_CHANGE_KINDS})", name="change_known"),
    Index(None, "run_id", "input_digest"),
    Index(None, "kind"),
)

# At most one drift run at a time across replicas: one row, taken when free or expired and
# kept alive by the running run's heartbeat. `expires_at` is epoch seconds, as for leases.
# The locks of a drift run in batches that replicas claim (`FOR UPDATE SKIP LOCKED` on
# PostgreSQL): `locks` is JSON, [[input_digest, revision, lock_digest], …]; a claim past
# `claimed_until` (its replica died) may be taken by another; `done_at` once every lock of the
# batch has its verdict in `drift_results`.
drift_batches = Table(
    "drift_batches",
    metadata,
    Column("run_id", Integer, ForeignKey("drift_runs.id"), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("locks", Text, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("done_at", DateTime(timezone=True), nullable=True),
)

drift_lease = Table(
    "drift_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("expires_at", Float, nullable=False),
)


# -- names, proposals, retirement (migration 0004_names) ----------------------------------
# A name points at its current input; what it serves is that input's current revision.
# Its history (`name_events`) keeps digests as plain checked text, without foreign keys, so
# `lockd gc` can remove an input long retired while the history that mentions it stays.
_POLICIES = ", ".join(f"'{policy}'" for policy in AUTO_PROMOTE)
NAME_STATUSES = ("active", "archived", "retired")
NAME_ACTIONS = ("created", "moved", "promoted", "archived", "retired", "restored")
PROPOSAL_SOURCES = ("refresh", "drift", "upgrade")
PROPOSAL_STATUSES = ("open", "promoted", "superseded")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=name)


names = Table(
    "names",
    metadata,
    Column("name", String(200), primary_key=True),
    _digest("input_digest", ForeignKey("inputs.digest"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("auto_promote", String(16), nullable=True),  # NULL: the operator's LOCKD_AUTO_PROMOTE
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
    _one_of("status", NAME_STATUSES, "status_known"),
    CheckConstraint(f"auto_promote IN ({_POLICIES})", name="auto_promote_known"),
    Index(None, "input_digest"),
)

name_events = Table(
    "name_events",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("action", String(16), nullable=False),
    _digest("input_digest", nullable=False),
    Column("revision", Integer, nullable=True),
    _digest("lock_digest", nullable=True),
    Column("proposal_id", Integer, nullable=True),
    Column("actor", String(200), nullable=True),  # the token's name; NULL for lockd itself
    Column("at", DateTime(timezone=True), nullable=False),
    _one_of("action", NAME_ACTIONS, "action_known"),
    _digest_check("input_digest"),
    CheckConstraint("seq >= 1", name="seq_positive"),
    Index(None, "input_digest"),
)

# A refresh or a drift run's fresh resolution that changed the lock, waiting for a person or
# the operator's policy. Promoting appends revision `base_revision + 1` to the input.
proposals = Table(
    "proposals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _digest("input_digest", ForeignKey("inputs.digest"), nullable=False),
    Column("base_revision", Integer, nullable=False),
    _digest("base_lock_digest", ForeignKey("locks.digest"), nullable=False),
    _digest("lock_digest", ForeignKey("locks.digest"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("diff", Text, nullable=False),  # LockDiff JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(200), nullable=True),  # a token name, or `policy:<policy>`
    Column("revision", Integer, nullable=True),  # the revision its promotion made
    _one_of("source", PROPOSAL_SOURCES, "source_known"),
    _one_of("status", PROPOSAL_STATUSES, "status_known"),
    Index(None, "input_digest", "status"),
)

# How a lock resolved under a name was made: the pins it preferred (minimal churn).
lock_provenance = Table(
    "lock_provenance",
    metadata,
    _digest("lock_digest", ForeignKey("locks.digest"), primary_key=True),
    Column("name", String(200), nullable=False),
    _digest("preferred_lock_digest", nullable=True),
    Column("preferences", Text, nullable=False),  # {project: version}
    Column("upgrade", Text, nullable=False),  # "all" or [project, …]
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Inputs out of drift and the default dashboard: no name points at them any longer.
retired_inputs = Table(
    "retired_inputs",
    metadata,
    _digest("input_digest", ForeignKey("inputs.digest"), primary_key=True),
    Column("retired_at", DateTime(timezone=True), nullable=False),
    Column("reason", String(64), nullable=False),
)
