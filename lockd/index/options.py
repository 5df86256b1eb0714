"""How an `IndexClient` is configured, as plain values.

Settings build a `ClientOptions` (`Settings.client_options()`) and `IndexClient.from_options`
takes it, so configuration never imports the client. Every bound of the client's memory is
here: pages by estimated bytes with their TTL, metadata by bytes, hashes and refusals by count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lockd.index.credentials import IndexCredentials

__all__ = ["DEFAULT_USER_AGENT", "ClientOptions"]

DEFAULT_USER_AGENT = "lockd/0.1 (+https://github.com/lockd; httpx)"

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Timeouts, connection limits, cache bounds and credentials of one `IndexClient`."""

    timeout: float = 30.0
    max_connections: int = 32
    # PyPI strips caching headers, so pages are kept for a TTL rather than revalidated.
    page_ttl: float = 600.0
    # Parsed pages, by their estimated size in memory; one page over an eighth is never kept.
    page_cache_bytes: int = 128 * _MIB
    # The in-memory metadata cache a client makes when it is given none (the CLI's).
    metadata_cache_bytes: int = 64 * _MIB
    # Metadata by file URL, for this client only: a file the index gives no hash for can
    # enter no other cache.
    metadata_by_url_bytes: int = 16 * _MIB
    hash_cache_entries: int = 16_384
    refusal_entries: int = 4_096
    # METADATA or PKG-INFO larger than this is an attack, not a package.
    max_metadata_bytes: int = 16 * _MIB
    user_agent: str = DEFAULT_USER_AGENT
    credentials: IndexCredentials = field(default_factory=IndexCredentials)
