"""The sdist metadata builder a configuration asks for (`LOCKD_SDIST_METADATA=sandbox`).

Every caller that makes an `IndexClient` (the CLI, the service, a drift run) passes
`metadata_builder_for(settings)`, so none builds an sdist's metadata unless the operator opted in,
and every one builds it the same way: the PEP 517 hook under bubblewrap
(`lockd.sdist_sandbox`), its build requirements locked by lockd as hashed wheels for the
sandbox's interpreter.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lockd.config import Settings
from lockd.errors import IndexUnavailable
from lockd.index import IndexClient
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.target import target_from_spec

if TYPE_CHECKING:
    from lockd.sdist_sandbox import BuildWheel, SandboxedMetadataBuilder

__all__ = ["metadata_builder_for"]


def metadata_builder_for(settings: Settings) -> SandboxedMetadataBuilder | None:
    """The sandbox builder under sandbox mode; None (sdists need static metadata) otherwise."""
    if settings.sdist_metadata != "sandbox":
        return None
    # Here, not at the top: the sandbox (tarfile, subprocess limits) only where an operator opted in.
    from lockd.sdist_sandbox import SandboxedMetadataBuilder, SandboxLimits  # noqa: PLC0415

    limits = SandboxLimits(
        seconds=settings.sandbox_timeout,
        cpu_seconds=max(1, int(settings.sandbox_timeout)),
        memory_bytes=settings.sandbox_memory_mb * 1024 * 1024,
    )
    return SandboxedMetadataBuilder(lambda requires: _build_wheels(settings, requires), limits=limits)


def _build_wheels(settings: Settings, requires: Sequence[str]) -> list[BuildWheel]:
    """An sdist's build requirements, locked by lockd as wheels only for the sandbox's interpreter."""
    # Here, not at the top: `lockd lock` asks for a builder before its first request, and
    # loading the resolver then would delay that request (it is loaded while pages arrive).
    from lockd.resolver import timed_resolve  # noqa: PLC0415

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = target_from_spec({"platform": settings.sandbox_platform, "python": python})
    request = LockRequest(
        requirements=parse_requirements("\n".join(requires), source="build-system.requires"),
        constraints=(),
        target=target,
        plan=settings.index_plan(target),
        options=LockOptions(only_binary=True),
    )
    import httpx  # noqa: PLC0415  (only a sandboxed build downloads this way; `lockd lock` never loads it)

    found: list[BuildWheel] = []
    # Build requirements never build: this client has no metadata builder.
    with (
        IndexClient.from_options(settings.client_options()) as client,
        httpx.Client(timeout=settings.http_timeout, follow_redirects=True) as http,
    ):
        lock, _stats = timed_resolve(request, client, settings.resolve_timeout)
        for package in lock.packages:
            wheel = next(f for f in package.files if f.kind == "wheel")
            response = http.get(wheel.url)
            if response.status_code != 200:
                raise IndexUnavailable(
                    f"{wheel.url} answered HTTP {response.status_code}", context={"url": wheel.url}
                )
            found.append((wheel.filename, wheel.sha256, response.content))
    return found
