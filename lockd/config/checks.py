"""What a setting's value must satisfy beyond its type, and the operator's files read at start.

`BEFORE` adjusts a raw value before its type is checked (case); `AFTER` checks a typed value
and raises `ValueError` with what to write instead. Files named by settings (metadata overrides,
private indexes, an accelerator table) are read and checked here when the settings are built,
so a bad file fails at start, not at the first lock that needs it; the readers are cached by
path, so the settings' properties read each file once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lockd.accelerator import AcceleratorTable, InvalidAcceleratorTable, load_table
from lockd.errors import LockdError
from lockd.finding_kinds import FINDING_KINDS
from lockd.index.credentials import IndexCredentials, split_credentials
from lockd.metadata_overrides import MetadataOverride, MetadataOverrideError, parse_overrides
from lockd.private_indexes import NamedIndex, PrivateIndexError, parse_private_indexes
from lockd.target import PLATFORMS

__all__ = [
    "AFTER",
    "BEFORE",
    "INDEX_URL_FIELDS",
    "InvalidConfiguration",
    "read_accelerators_file",
    "read_overrides",
    "read_private_indexes",
    "split_index_credentials",
]

INDEX_URL_FIELDS = ("index_url", "pytorch_index_url")
_FIX_VARIABLES = "fix the LOCKD_* environment variables named above"


class InvalidConfiguration(LockdError):
    code = "invalid-configuration"
    status = 500
    title = "Invalid configuration"


@functools.cache
def read_private_indexes(path: Path) -> tuple[tuple[NamedIndex, IndexCredentials], ...]:
    try:
        configured = parse_private_indexes(path.read_text(encoding="utf-8"))
        found = []
        for index, url in configured:
            bare, credentials = split_credentials(url)
            found.append((replace(index, url=bare if bare.endswith("/") else bare + "/"), credentials))
        return tuple(found)
    except (OSError, UnicodeDecodeError, PrivateIndexError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


@functools.cache
def read_overrides(path: Path) -> tuple[MetadataOverride, ...]:
    try:
        return parse_overrides(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, MetadataOverrideError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def split_index_credentials(given: dict[str, Any]) -> dict[str, IndexCredentials]:
    """Splits the userinfo off the index URLs in `given` (in place); returns it by field.

    An error names the variable and never echoes the URL, which holds the credentials.
    """
    credentials = {}
    for name in INDEX_URL_FIELDS:
        value = given.get(name)
        if isinstance(value, str):
            try:
                given[name], credentials[name] = split_credentials(value)
            except ValueError as exc:
                raise InvalidConfiguration(
                    f"invalid configuration: LOCKD_{name.upper()}: {exc}",
                    hint=_FIX_VARIABLES,
                    context={"problems": [f"LOCKD_{name.upper()}: {exc}"]},
                ) from None
    return credentials


def read_accelerators_file(path: Path | None) -> AcceleratorTable | None:
    """The operator's accelerator table, checked against the platforms lockd knows (None: unset)."""
    if path is None:
        return None
    try:
        table = load_table(path)
    except InvalidAcceleratorTable as exc:
        problem = f"LOCKD_ACCELERATORS_FILE: {exc.message}"
        raise InvalidConfiguration(
            f"invalid configuration: {problem}",
            hint="fix the file, or unset LOCKD_ACCELERATORS_FILE to use the shipped table",
            context={"problems": [problem]},
        ) from None
    unknown = sorted({p for v in table.variants.values() for p in v.platforms} - set(PLATFORMS))
    if unknown:
        problem = (
            f"LOCKD_ACCELERATORS_FILE: unknown platforms {', '.join(unknown)} (known: {', '.join(PLATFORMS)})"
        )
        raise InvalidConfiguration(f"invalid configuration: {problem}", context={"problems": [problem]})
    return table


def _known_database(value: str) -> str:
    if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
        raise ValueError("use sqlite:///path or postgresql+psycopg://user@host/db")
    return value


def _known_kind(value: str) -> str:
    value = value.strip().lower()
    allowed = [k for k in FINDING_KINDS if k not in ("vulnerable", "current")]
    if value != "none" and value not in allowed:
        raise ValueError("use `none` (most severe) or one of: " + ", ".join(allowed))
    return value


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _readable_overrides(value: Path | None) -> Path | None:
    if value is not None:
        read_overrides(value)
    return value


def _readable_private_indexes(value: Path | None) -> Path | None:
    if value is not None:
        read_private_indexes(value)
    return value


def _lower(value: object) -> object:
    return value.strip().lower() or None if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


BEFORE: Mapping[str, Callable[[Any], object]] = {"refuse_advisories_at": _lower, "log_level": _upper}
AFTER: Mapping[str, Callable[[Any], object]] = {
    "database_url": _known_database,
    "vulnerable_after": _known_kind,
    "index_url": _http_url,
    "pytorch_index_url": _http_url,
    "webhook_url": _http_url,
    "osv_url": _http_url,
    "public_url": _http_url,
    "metadata_overrides": _readable_overrides,
    "private_indexes": _readable_private_indexes,
}
