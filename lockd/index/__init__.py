"""Package indexes over HTTP: project pages, core metadata and file hashes (PEP 503, 691, 658, 714).

One module per job: `client` (what to fetch and remember), `metadata_reader` (how one file's
core metadata is read), `sdist_worker` (a big tar sdist read by a child process), `early_child`
(`lockd lock`'s page child, spawned before the settings load), `fetcher` (the HTTP, every read
counted and checked; `urls` and `answers` are its values), `body` (an
answer read within byte and compression limits), `network` (sockets that end at the caller's
deadline), `connections` (the keep-alive pool), `remote_zip` (a wheel's METADATA through byte
ranges, or front to back), `read_ahead` (a download received on its own thread), `caches`
(what is remembered, always bounded, metadata by the file's identity), `credentials` (HTTP
Basic per index host, as pip applies them), `options` (how a client is configured, as values,
limits included), `threads` (the fetch threads, shared by resolutions), `single_flight` and
`stats`. Settings import `credentials` and `options` directly, never the client. Every
transport error becomes a `LockdError`.

The names below load with their module on first use (PEP 562), not with this package: every
`lockd.index.<module>` import runs this file first, and an eager client here made the settings
(`lockd migrate`, `lockd token`) load the client, the page parsers and the HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lockd.lazy_names import lazy_names

if TYPE_CHECKING:
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

_MODULE_OF = {
    **dict.fromkeys(
        (
            "HashCache",
            "MetadataCache",
            "MetadataKey",
            "PageBody",
            "PageHead",
            "PageStore",
            "memory_hash_cache",
            "memory_metadata_cache",
        ),
        "caches",
    ),
    "IndexClient": "client",
    **dict.fromkeys(
        ("BasicCredential", "IndexCredential", "IndexCredentials", "split_credentials"), "credentials"
    ),
    **dict.fromkeys(("DEFAULT_USER_AGENT", "ClientOptions"), "options"),
    "FetchStats": "stats",
    **dict.fromkeys(("TaskScope", "WorkerPool"), "threads"),
}


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF, globals())
