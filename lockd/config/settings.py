"""Typed settings from `LOCKD_*` environment variables, built once by the entry points.

Nothing here runs at import: `Settings()` is constructed by `lockd.cli` (or a test) and
passed down. Each field `x` is read from `LOCKD_X` (an empty variable counts as unset; values
given to `Settings(...)` win over the environment) as `lockd.config.variables` reads a field:
converted by `lockd.config.coercion`, checked by `lockd.config.checks`. Bad values fail fast
with `InvalidConfiguration`, naming every bad variable. No pydantic: `lockd lock` builds
settings before its first request, and pydantic-settings cost it more start-up than the rest
of its imports.

Index URLs may carry credentials (`https://user:token@mirror/simple/`). They are split off here,
once: `index_url` and `pytorch_index_url` never hold them, so neither does anything built from
them (index plans, input digests, locks, stored rows, messages); only `index_credentials` does,
and only the `IndexClient` reads it, through `client_options()`. Settings import the index's
credentials and options modules, never its client; `index_plan()` routes a target's projects.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lockd.accelerator import TORCH_FAMILY, AcceleratorTable
from lockd.config.checks import (
    INDEX_URL_FIELDS,
    InvalidConfiguration,
    read_accelerators_file,
    read_overrides,
    read_private_indexes,
    split_index_credentials,
)
from lockd.config.variables import bounded, checked, environment, field_specs
from lockd.errors import InvalidRequest
from lockd.finding_kinds import FINDING_KINDS, FindingKind, severity_order
from lockd.index.credentials import IndexCredentials
from lockd.index.options import ClientOptions
from lockd.metadata_overrides import MetadataOverride
from lockd.private_indexes import NamedIndex
from lockd.routing import DEFAULT_INDEX_URL, DEFAULT_PYTORCH_BASE, IndexPlan, plan_for
from lockd.target import Target

if TYPE_CHECKING:
    from lockd.inputs import LockOptions, LockRequest
    from lockd.intake import OffersFor

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "load_settings", "setting_names"]

DEFAULT_DATABASE_URL = "sqlite:///./var/lockd.db"
_CLIENT_DEFAULTS = ClientOptions()


@dataclass(frozen=True, slots=True, init=False)
class Settings:
    """Every knob of lockd. Field `x` is read from `LOCKD_X`; lists are comma-separated."""

    database_url: str = DEFAULT_DATABASE_URL
    index_url: str = DEFAULT_INDEX_URL
    pytorch_index_url: str = DEFAULT_PYTORCH_BASE
    torch_family: str = ",".join(sorted(TORCH_FAMILY))
    page_ttl: float = bounded(600.0, ge=0)
    http_timeout: float = bounded(30.0, gt=0)
    http_max_connections: int = bounded(64, ge=1)
    max_body_bytes: int = bounded(1024 * 1024, ge=1)
    max_requirements: int = bounded(500, ge=1)
    # Constraints files are long (Apache Airflow's is ~700 lines) and cost linear time.
    max_constraints: int = bounded(5000, ge=1)
    # A TOML file of `[[dependency-metadata]]` for sdists nothing else describes (lockd.metadata_overrides).
    metadata_overrides: Path | None = None
    # A TOML file of `[[index]]` private indexes (name, url, projects): lockd.private_indexes.
    private_indexes: Path | None = None
    # Hosts whose https wheel URLs a requirement may name (`name @ https://host/x.whl`), comma-separated.
    url_hosts: str = ""
    # `sandbox`: an sdist nothing else describes gets its PEP 517 metadata hook run under bubblewrap.
    sdist_metadata: Literal["static", "sandbox"] = "static"
    sandbox_timeout: float = bounded(60.0, gt=0)
    sandbox_memory_mb: int = bounded(1024, ge=64)
    # The interpreter the sandbox runs is this server's; its build requirements are locked for it.
    sandbox_platform: str = "linux_x86_64"
    resolve_timeout: float = bounded(120.0, gt=0)
    # A resolution's single-flight lease, renewed every third of it while the holder lives: a
    # server killed mid-resolution blocks that input for at most this long.
    lease_ttl: float = bounded(15.0, gt=0)
    anonymous_read: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Drift schedule: off unless one of these is set (see the drift issue).
    drift_interval: float | None = bounded(None, gt=0)
    drift_cron: str | None = None
    webhook_url: str | None = None
    # A drift run renews its lease every quarter of this; a heartbeat older than it is a dead run.
    drift_lease_ttl: float = bounded(60.0, gt=0)
    drift_workers: int = bounded(4, ge=1, le=64)
    # On PostgreSQL every replica looks this often for batches of a running drift run to claim (0: never).
    drift_help_interval: float = bounded(2.0, ge=0)
    # Advisory sources (off unless one is set): a tree of OSV files and/or an OSV-compatible API.
    advisories_dir: Path | None = None
    osv_url: str | None = None
    osv_timeout: float = bounded(10.0, gt=0)  # each request to the API
    osv_deadline: float = bounded(60.0, gt=0)  # all requests for one lock
    osv_max_response_bytes: int = bounded(16 * 1024 * 1024, ge=1024)
    # How old advisory data may get: `lockd serve` re-reads the directory this often (when its
    # files changed), and answers (per lock, and the API's per pin) are kept this long.
    advisories_refresh_seconds: float = bounded(300.0, gt=0)
    # The finding kind `vulnerable` ranks just below in severity; `none` ranks it above all.
    vulnerable_after: str = "missing"
    # Refuse to store a new lock with an advisory at or above this level (409); `any` refuses
    # every advisory, even one without a severity. Unset: serve and report.
    refuse_advisories_at: Literal["any", "low", "medium", "high", "critical"] | None = None
    # What lockd reads from an index at most (see `ClientOptions` for why each default fits
    # real indexes): past a limit, a page is refused and a file's version ruled out.
    max_page_bytes: int = bounded(_CLIENT_DEFAULTS.max_page_bytes, ge=1024)
    max_page_files: int = bounded(_CLIENT_DEFAULTS.max_page_files, ge=1)
    max_compression_ratio: int = bounded(_CLIENT_DEFAULTS.max_compression_ratio, ge=1)
    max_metadata_bytes: int = bounded(_CLIENT_DEFAULTS.max_metadata_bytes, ge=1024)
    max_requires_dist: int = bounded(_CLIENT_DEFAULTS.max_requires_dist, ge=1)
    max_sdist_bytes: int = bounded(_CLIENT_DEFAULTS.max_sdist_bytes, ge=1024)
    max_archive_members: int = bounded(_CLIENT_DEFAULTS.max_archive_members, ge=1)
    max_sdist_member_bytes: int = bounded(_CLIENT_DEFAULTS.max_sdist_member_bytes, ge=1024)
    max_download_bytes: int = bounded(_CLIENT_DEFAULTS.max_download_bytes, ge=1024)
    # A page (decoded) this big or bigger is parsed by a child process (`lockd.index.page_worker`),
    # off the GIL the resolutions share; 0: every page in this process (no child is ever started).
    page_worker_from: int = bounded(_CLIENT_DEFAULTS.page_worker_from or 0, ge=0)
    # The operator's accelerator table (the shape of lockd/accelerator/variants.toml); read and
    # checked at start, installed by the entry points in place of the shipped one.
    accelerators_file: Path | None = None
    # Named locks: which proposals promote themselves (`lockd.lock_diff.AUTO_PROMOTE`; a name may
    # override it), when an unused name retires, and how long `lockd gc` keeps a retired input.
    auto_promote: Literal["never", "patch", "minor", "always"] = "never"
    name_retire_after: float = bounded(90 * 86400.0, gt=0)
    gc_after: float = bounded(30 * 86400.0, gt=0)
    # Where people reach this server (links in webhooks), and the webhook's body format.
    public_url: str | None = None
    webhook_format: Literal["json", "slack"] = "json"
    # How long a dashboard sign-in (a read token exchanged for a cookie) lasts.
    session_ttl: float = bounded(3600.0, gt=0, le=7 * 86400.0)
    # How long a drift run waits for one lock before reporting it unresolvable and moving on;
    # unset: the resolution budget plus one lease TTL.
    drift_lock_timeout: float | None = bounded(None, gt=0)
    # Hostile clients (each limit per process): the whole request body must arrive within
    # body_timeout seconds (408); at most max_body_reads bodies are read at once and at most
    # max_resolutions new resolutions run at once (503 with Retry-After); with
    # token_resolutions_per_minute, one token starts at most that many a minute (429);
    # max_connections is uvicorn's --limit-concurrency (unset: no limit).
    body_timeout: float = bounded(30.0, gt=0)
    max_body_reads: int = bounded(256, ge=1)
    max_resolutions: int = bounded(32, ge=1)
    token_resolutions_per_minute: float | None = bounded(None, gt=0)
    max_connections: int | None = bounded(None, ge=1)
    # /readyz fails when the SQLite database's disk has less free space than this.
    min_free_disk_mb: int = bounded(256, ge=0)
    # `lockd lock`'s persistent cache (metadata, pages, hashes): unset, $XDG_CACHE_HOME/lockd
    # (~/.cache/lockd); least recently used entries go past cache_max_bytes.
    cache_dir: Path | None = None
    cache_max_bytes: int = bounded(1024 * 1024 * 1024, ge=1024 * 1024)
    # The userinfo split off each index URL field, by field; never shown, never compared.
    _credentials: dict[str, IndexCredentials] = field(default_factory=dict, repr=False, compare=False)
    _accelerators: AcceleratorTable | None = field(default=None, repr=False, compare=False)

    def __init__(self, **given: object) -> None:
        """`LOCKD_*` from the environment, overridden by `given`; `InvalidConfiguration` lists every bad one.

        Names that are no setting are ignored, in the environment and in `given` alike.
        """
        values = {**environment(), **given}
        credentials = split_index_credentials(values)
        problems = []
        for name, (annotation, bounds, default) in field_specs(Settings).items():
            if name not in values:
                object.__setattr__(self, name, default)
                continue
            try:
                object.__setattr__(self, name, checked(name, values[name], annotation, bounds))
            except ValueError as exc:
                problems.append(f"LOCKD_{name.upper()}: {exc}")
        if problems:
            raise InvalidConfiguration(
                "invalid configuration: " + "; ".join(problems),
                hint="fix the LOCKD_* environment variables named above",
                context={"problems": problems},
            )
        object.__setattr__(self, "_credentials", credentials)
        object.__setattr__(self, "_accelerators", read_accelerators_file(self.accelerators_file))

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (index URLs without their credentials): `Settings(**as_dict())` is equal."""
        return {name: getattr(self, name) for name in field_specs(Settings)}

    @property
    def accelerator_table(self) -> AcceleratorTable | None:
        """The operator's accelerator table; None: the shipped one."""
        return self._accelerators

    @property
    def named_indexes(self) -> tuple[NamedIndex, ...]:
        """The configured private indexes, their URLs without credentials."""
        if self.private_indexes is None:
            return ()
        return tuple(index for index, _credentials in read_private_indexes(self.private_indexes))

    @property
    def dependency_metadata(self) -> tuple[MetadataOverride, ...]:
        """The operator's metadata overrides, read from `metadata_overrides` (cached by path)."""
        return () if self.metadata_overrides is None else read_overrides(self.metadata_overrides)

    @property
    def index_credentials(self) -> IndexCredentials:
        """The HTTP Basic credentials of both indexes, default index first."""
        found = IndexCredentials()
        for name in INDEX_URL_FIELDS:
            found += self._credentials.get(name, IndexCredentials())
        if self.private_indexes is not None:
            for _index, credentials in read_private_indexes(self.private_indexes):
                found += credentials
        return found

    def client_options(self) -> ClientOptions:
        """How every `IndexClient` of this configuration is built: its limits and the indexes' credentials."""
        return ClientOptions(
            timeout=self.http_timeout,
            max_connections=self.http_max_connections,
            page_ttl=self.page_ttl,
            credentials=self.index_credentials,
            max_page_bytes=self.max_page_bytes,
            max_page_files=self.max_page_files,
            max_compression_ratio=self.max_compression_ratio,
            max_metadata_bytes=self.max_metadata_bytes,
            max_requires_dist=self.max_requires_dist,
            max_sdist_bytes=self.max_sdist_bytes,
            max_archive_members=self.max_archive_members,
            max_sdist_member_bytes=self.max_sdist_member_bytes,
            max_download_bytes=self.max_download_bytes,
            page_worker_from=self.page_worker_from or None,
        )

    def index_plan(self, target: Target, indexes: Sequence[str] = ()) -> IndexPlan:
        """Which index serves which project for `target` under this configuration (no credentials).

        `indexes` selects configured private indexes by name (never by URL); the others only
        reserve their projects' names.
        """
        configured = {index.name: index for index in self.named_indexes}
        unknown = sorted(set(indexes) - set(configured))
        if unknown:
            raise InvalidRequest(
                f"no index named {', '.join(unknown)} is configured",
                hint="select private indexes by name: "
                + (", ".join(sorted(configured)) or "none is configured")
                + "; index URLs are configuration, never input",
                context={"field": "indexes", "unknown": unknown, "configured": sorted(configured)},
            )
        named = [replace(index, selected=index.name in indexes) for index in configured.values()]
        return plan_for(
            target,
            default_url=self.index_url,
            pytorch_base=self.pytorch_index_url,
            family=self.torch_family_names,
            named=named,
        )

    def index_plan_for(self, indexes: Sequence[str] = ()) -> Callable[[Target], IndexPlan]:
        """`index_plan` with these private indexes selected, for any target a request resolves to."""
        selected = tuple(indexes)

        def plan(target: Target) -> IndexPlan:
            return self.index_plan(target, selected)

        return plan

    def build_request(
        self,
        *,
        requirements: str,
        target: typing.Mapping[str, object],
        constraints: str = "",
        options: LockOptions | None = None,
        indexes: Sequence[str] = (),
        offers: OffersFor | None = None,
    ) -> LockRequest:
        """The `LockRequest` for this input under these settings: their requirement and constraint
        limits, URL hosts, metadata overrides and index plan (`indexes` selects private indexes).

        The one place a request meets the settings: the service, `lockd lock` and the tests build
        through it, so a new limit cannot be applied by one and forgotten by another. `offers`
        answers `cuda=auto` (built by the caller on `index_plan_for(indexes)`, from its index).
        """
        from lockd.intake import build_request  # noqa: PLC0415 (settings load without the request parser)

        return build_request(
            requirements=requirements,
            target=target,
            index_plan=self.index_plan_for(indexes),
            constraints=constraints,
            options=options,
            max_requirements=self.max_requirements,
            max_constraints=self.max_constraints,
            url_hosts=self.allowed_url_hosts,
            metadata_overrides=self.dependency_metadata,
            offers=offers,
        )

    def with_index_urls(
        self, *, index_url: str | None = None, pytorch_index_url: str | None = None
    ) -> Settings:
        """These settings with other index URLs (the CLI's `--index-url`, `--pytorch-index-url`).

        A URL given here brings its own credentials, or none; the other keeps the ones it had.
        """
        given = {
            name: url
            for name, url in zip(INDEX_URL_FIELDS, (index_url, pytorch_index_url), strict=True)
            if url
        }
        updated = Settings(**{**self.as_dict(), **given})
        kept = {name: found for name, found in self._credentials.items() if name not in given}
        object.__setattr__(updated, "_credentials", {**updated._credentials, **kept})
        return updated

    @property
    def allowed_url_hosts(self) -> frozenset[str]:
        """Bare host names (https only), or `http://host:port` origins allowed exactly."""
        return frozenset(
            host.strip().lower().rstrip("/") for host in self.url_hosts.split(",") if host.strip()
        )

    @property
    def severity_order(self) -> tuple[FindingKind, ...]:
        """Finding kinds, most severe first, with `vulnerable` where LOCKD_VULNERABLE_AFTER puts it."""
        after = next((k for k in FINDING_KINDS if k == self.vulnerable_after), None)
        return severity_order(vulnerable_after=after)

    @property
    def torch_family_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.torch_family.split(",") if name.strip())

    @property
    def user_cache_dir(self) -> Path:
        """Where `lockd lock` keeps its cache: LOCKD_CACHE_DIR, else $XDG_CACHE_HOME/lockd, else ~/.cache/lockd."""
        if self.cache_dir is not None:
            return self.cache_dir
        # The XDG base directory spec: a relative value is invalid and must be ignored.
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".cache"
        return base / "lockd"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL (None for PostgreSQL or in-memory)."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix) or self.database_url == "sqlite://":
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0].removeprefix("file:")  # `file:` URIs too
        return None if path in ("", ":memory:") else Path(path)


def setting_names() -> tuple[str, ...]:
    """Every setting's field name; its variable is `LOCKD_` and the name in capitals."""
    return tuple(field_specs(Settings))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (plus overrides), or `InvalidConfiguration` naming the variable."""
    return Settings(**overrides)
