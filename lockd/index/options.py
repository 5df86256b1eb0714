"""How an `IndexClient` is configured, as plain values.

Settings build a `ClientOptions` (`Settings.client_options()`) and `IndexClient.from_options`
takes it, so configuration never imports the client. Every bound of the client's memory is
here: pages by estimated bytes with their TTL, metadata by bytes, hashes and refusals by count;
and every bound on what it reads from an index (the `max_*` limits), each with a default that
the largest real pages and files fit in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lockd.index.credentials import IndexCredentials

__all__ = ["DEFAULT_USER_AGENT", "ClientOptions"]

DEFAULT_USER_AGENT = "lockd/0.1 (+https://github.com/lockd)"

_MIB = 1024 * 1024
_GIB = 1024 * _MIB


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientOptions:
    """Timeouts, connection limits, cache bounds and credentials of one `IndexClient`."""

    timeout: float = 30.0
    # Connections to the indexes, and so fetches in flight: the prefetch walk fans out this wide
    # (uv keeps about 50 in flight).
    max_connections: int = 64
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
    # What lockd reads from an index. A project page, decompressed: PyPI's biggest JSON pages
    # (ddtrace's ~50,000 files) are about 35 MiB; torch's and boto3's are 2-4 MiB.
    max_page_bytes: int = 64 * _MIB
    max_page_files: int = 100_000
    # Decoded bytes per byte received, judged past 1 MiB: JSON pages gzip about 10-25:1.
    max_compression_ratio: int = 200
    # METADATA or PKG-INFO larger than this is an attack, not a package.
    max_metadata_bytes: int = 16 * _MIB
    # Requires-Dist lines in one METADATA: apache-airflow's ~800 are among the most.
    max_requires_dist: int = 5_000
    # An sdist is downloaded to a temporary file to read its PKG-INFO.
    max_sdist_bytes: int = 512 * _MIB
    # Members of an sdist or of a wheel's central directory (ansible's wheel has ~60,000), and
    # the size of any one sdist member walked past (skipping it inflates all of it).
    max_archive_members: int = 200_000
    max_sdist_member_bytes: int = 256 * _MIB
    # A tar sdist listed at this size or more is read by a process of its own
    # (`lockd.index.sdist_worker`); None: always in this process.
    sdist_worker_from: int | None = 16 * _MIB
    # A project page (decompressed) of this size or more is parsed by a process of its own
    # (`lockd.index.page_worker`); None: every page in this process.
    page_worker_from: int | None = 128 * 1024
    # A whole file streamed through, never kept: a hash, or a wheel from a server ignoring Range.
    max_download_bytes: int = 8 * _GIB
    user_agent: str = DEFAULT_USER_AGENT
    credentials: IndexCredentials = field(default_factory=IndexCredentials)
