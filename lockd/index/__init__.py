"""Package indexes over HTTP: project pages, core metadata and file hashes (PEP 503, 691, 658, 714).

One module per job: `client` (what to fetch and remember), `metadata_reader` (how one file's
core metadata is read), `fetcher` (the HTTP, every read counted and checked), `body` (an answer read within byte and compression limits), `network`
(sockets that end at the caller's deadline), `remote_zip` (a wheel's METADATA through byte
ranges, or front to back), `caches` (what is remembered, always bounded, metadata by the file's
identity), `credentials` (HTTP Basic per index host, as pip applies them), `options` (how a
client is configured, as values, limits included), `threads` (the fetch threads, shared by
resolutions), `single_flight` and `stats`. Settings import
`credentials` and `options` directly, never the client. Every httpx error becomes a `LockdError`.
"""

from __future__ import annotations

from lockd.index.caches import (
    HashCache,
    MetadataCache,
    MetadataKey,
    PageBody,
    PageHead,
    PageStore,
    memory_hash_cache,
    memory_metadata_cache,
)
from lockd.index.client import IndexClient
from lockd.index.credentials import BasicCredential, IndexCredential, IndexCredentials, split_credentials
from lockd.index.options import DEFAULT_USER_AGENT, ClientOptions
from lockd.index.stats import FetchStats
from lockd.index.threads import TaskScope, WorkerPool

__all__ = [
    "DEFAULT_USER_AGENT",
    "BasicCredential",
    "ClientOptions",
    "FetchStats",
    "HashCache",
    "IndexClient",
    "IndexCredential",
    "IndexCredentials",
    "MetadataCache",
    "MetadataKey",
    "PageBody",
    "PageHead",
    "PageStore",
    "TaskScope",
    "WorkerPool",
    "memory_hash_cache",
    "memory_metadata_cache",
    "split_credentials",
]
