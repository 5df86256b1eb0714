"""Typed settings from `LOCKD_*` environment variables, built once by the entry points.

Nothing here runs at import: `Settings()` is constructed by `lockd.cli` (or a test) and
passed down. Bad values fail fast with `InvalidConfiguration`, naming the variable.

Index URLs may carry credentials (`https://user:token@mirror/simple/`). They are split off here,
once: `index_url` and `pytorch_index_url` never hold them, so neither does anything built from
them (index plans, input digests, locks, stored rows, messages); only `index_credentials` does,
and only the `IndexClient` reads it, through `client_options()`. Settings import the index's
credentials and options modules, never its client; `index_plan()` routes a target's projects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from lockd.accelerator import TORCH_FAMILY, AcceleratorTable, InvalidAcceleratorTable, load_table
from lockd.errors import LockdError
from lockd.index.credentials import IndexCredentials, split_credentials
from lockd.index.options import ClientOptions
from lockd.routing import DEFAULT_INDEX_URL, DEFAULT_PYTORCH_BASE, IndexPlan, plan_for
from lockd.target import PLATFORMS, Target

__all__ = ["DEFAULT_DATABASE_URL", "InvalidConfiguration", "Settings", "load_settings"]

DEFAULT_DATABASE_URL = "sqlite:///./var/lockd.db"
_INDEX_URL_FIELDS = ("index_url", "pytorch_index_url")


class InvalidConfiguration(LockdError):
    code = "invalid-configuration"
    status = 500
    title = "Invalid configuration"


class Settings(BaseSettings):
    """Every knob of lockd. Field `x` is read from `LOCKD_X`; lists are comma-separated."""

    # An empty variable counts as unset: compose passes `${LOCKD_X:-}` for settings left off.
    model_config = SettingsConfigDict(env_prefix="LOCKD_", frozen=True, extra="ignore", env_ignore_empty=True)

    database_url: str = DEFAULT_DATABASE_URL
    index_url: str = DEFAULT_INDEX_URL
    pytorch_index_url: str = DEFAULT_PYTORCH_BASE
    torch_family: str = ",".join(sorted(TORCH_FAMILY))
    page_ttl: float = Field(default=600.0, ge=0)
    http_timeout: float = Field(default=30.0, gt=0)
    http_max_connections: int = Field(default=32, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    max_requirements: int = Field(default=500, ge=1)
    resolve_timeout: float = Field(default=120.0, gt=0)
    # A resolution's single-flight lease, renewed every third of it while the holder lives: a
    # server killed mid-resolution blocks that input for at most this long.
    lease_ttl: float = Field(default=15.0, gt=0)
    anonymous_read: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Drift schedule: off unless one of these is set (see the drift issue).
    drift_interval: float | None = Field(default=None, gt=0)
    drift_cron: str | None = None
    webhook_url: str | None = None
    # A drift run renews its lease every quarter of this; a heartbeat older than it is a dead run.
    drift_lease_ttl: float = Field(default=60.0, gt=0)
    drift_workers: int = Field(default=4, ge=1, le=64)
    # The operator's accelerator table (the shape of lockd/accelerator/variants.toml); read and
    # checked at start, installed by the entry points in place of the shipped one.
    accelerators_file: Path | None = None
    # Named locks: which proposals promote themselves (`lockd.lock_diff.AUTO_PROMOTE`; a name may
    # override it), when an unused name retires, and how long `lockd gc` keeps a retired input.
    auto_promote: Literal["never", "patch", "minor", "always"] = "never"
    name_retire_after: float = Field(default=90 * 86400.0, gt=0)
    gc_after: float = Field(default=30 * 86400.0, gt=0)
    # Where people reach this server (links in webhooks), and the webhook's body format.
    public_url: str | None = None
    webhook_format: Literal["json", "slack"] = "json"
    # How long a dashboard sign-in (a read token exchanged for a cookie) lasts.
    session_ttl: float = Field(default=3600.0, gt=0, le=7 * 86400.0)
    # The userinfo split off each index URL field, by field; never dumped, never in a repr.
    _credentials: dict[str, IndexCredentials] = PrivateAttr(default_factory=dict)
    _accelerators: AcceleratorTable | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _split_index_credentials(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        credentials = {}
        for name in _INDEX_URL_FIELDS:
            value = data.get(name)
            if isinstance(value, str):
                try:
                    data[name], credentials[name] = split_credentials(value)
                except ValueError as exc:
                    raise InvalidConfiguration(
                        f"invalid configuration: LOCKD_{name.upper()}: {exc}",
                        hint="fix the LOCKD_* environment variables named above",
                        context={"problems": [f"LOCKD_{name.upper()}: {exc}"]},
                    ) from None
        settings = handler(data)
        settings._credentials = credentials
        return settings

    @model_validator(mode="after")
    def _read_accelerators_file(self) -> Settings:
        if self.accelerators_file is None:
            return self
        try:
            table = load_table(self.accelerators_file)
        except InvalidAcceleratorTable as exc:
            problem = f"LOCKD_ACCELERATORS_FILE: {exc.message}"
            raise InvalidConfiguration(
                f"invalid configuration: {problem}",
                hint="fix the file, or unset LOCKD_ACCELERATORS_FILE to use the shipped table",
                context={"problems": [problem]},
            ) from None
        unknown = sorted({p for v in table.variants.values() for p in v.platforms} - set(PLATFORMS))
        if unknown:
            problem = f"LOCKD_ACCELERATORS_FILE: unknown platforms {', '.join(unknown)} (known: {', '.join(PLATFORMS)})"
            raise InvalidConfiguration(f"invalid configuration: {problem}", context={"problems": [problem]})
        self._accelerators = table
        return self

    @property
    def accelerator_table(self) -> AcceleratorTable | None:
        """The operator's accelerator table; None: the shipped one."""
        return self._accelerators

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("use sqlite:///path or postgresql+psycopg://user@host/db")
        return value

    @field_validator("index_url", "pytorch_index_url", "webhook_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def index_credentials(self) -> IndexCredentials:
        """The HTTP Basic credentials of both indexes, default index first."""
        found = IndexCredentials()
        for name in _INDEX_URL_FIELDS:
            found += self._credentials.get(name, IndexCredentials())
        return found

    def client_options(self) -> ClientOptions:
        """How every `IndexClient` of this configuration is built: its limits and the indexes' credentials."""
        return ClientOptions(
            timeout=self.http_timeout,
            max_connections=self.http_max_connections,
            page_ttl=self.page_ttl,
            credentials=self.index_credentials,
        )

    def index_plan(self, target: Target) -> IndexPlan:
        """Which index serves which project for `target` under this configuration (no credentials)."""
        return plan_for(
            target,
            default_url=self.index_url,
            pytorch_base=self.pytorch_index_url,
            family=self.torch_family_names,
        )

    def with_index_urls(self, *, index_url: str | None = None, pytorch_index_url: str | None = None) -> Settings:
        """These settings with other index URLs (the CLI's `--index-url`, `--pytorch-index-url`).

        A URL given here brings its own credentials, or none; the other keeps the ones it had.
        """
        given = {name: url for name, url in zip(_INDEX_URL_FIELDS, (index_url, pytorch_index_url), strict=True) if url}
        updated = load_settings(**{**self.model_dump(), **given})
        kept = {name: found for name, found in self._credentials.items() if name not in given}
        updated._credentials = {**updated._credentials, **kept}
        return updated

    @property
    def torch_family_names(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.torch_family.split(",") if name.strip())

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL (None for PostgreSQL or in-memory)."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix) or self.database_url == "sqlite://":
            return None
        path = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (plus overrides), or `InvalidConfiguration` naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"LOCKD_{field.upper()}: {error['msg']}")
        raise InvalidConfiguration(
            "invalid configuration: " + "; ".join(problems),
            hint="fix the LOCKD_* environment variables named above",
            context={"problems": problems},
        ) from None
