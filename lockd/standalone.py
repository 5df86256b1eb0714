"""Locking without a database: a request, an index client and a timed resolution under `Settings`.

`lockd lock` needs only this module, so it never loads SQLAlchemy or Alembic (~0.2 s, half of its
imports); `lockd.service` builds on the same functions and adds storage, revisions and leases.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace

import httpx

from lockd.config import Settings
from lockd.errors import IndexUnavailable, InvalidRequest
from lockd.index import FetchStats, HashCache, IndexClient, MetadataCache
from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.lock import Lock
from lockd.resolver import ResolveReporter, ResolveStats, timed_resolve
from lockd.routing import IndexPlan, plan_for
from lockd.sdist_sandbox import BuildWheel, SandboxedMetadataBuilder, SandboxLimits
from lockd.target import Target, target_from_spec

# ResolveStats and timed_resolve live in lockd.resolver; lockd.service still imports them from here.
__all__ = ["ResolveStats", "build_request", "index_client", "resolve_standalone", "timed_resolve"]


def build_request(
    settings: Settings,
    *,
    requirements: str,
    target: Mapping[str, object],
    constraints: str = "",
    options: LockOptions | None = None,
    indexes: Sequence[str] = (),
) -> LockRequest:
    """Intake: text + loose target spec → a normalised `LockRequest` under this configuration.

    `indexes` selects configured private indexes by name (never by URL).
    """
    parsed = parse_requirements(
        requirements, max_requirements=settings.max_requirements, url_hosts=settings.allowed_url_hosts
    )
    if not parsed:
        raise InvalidRequest(
            "no requirements given", hint="send a requirements.in with at least one project name"
        )
    parsed_constraints = parse_requirements(
        constraints, source="constraints.txt", max_requirements=settings.max_constraints
    )
    resolved_target = target_from_spec(target)
    return LockRequest(
        requirements=parsed,
        constraints=parsed_constraints,
        target=resolved_target,
        plan=_plan(settings, resolved_target, indexes),
        options=replace(options or LockOptions(), metadata_overrides=settings.dependency_metadata),
    )


def index_client(
    settings: Settings,
    *,
    page_ttl: float | None = None,
    metadata_cache: MetadataCache | None = None,
    hash_cache: HashCache | None = None,
) -> IndexClient:
    """An `IndexClient` under this configuration: its limits, and the indexes' credentials.

    Every client lockd builds comes from here, so none reads a private index without them.
    """
    options = settings.client_options()
    if page_ttl is not None:
        options = replace(options, page_ttl=page_ttl)
    builder = None
    if settings.sdist_metadata == "sandbox":
        limits = SandboxLimits(
            seconds=settings.sandbox_timeout,
            cpu_seconds=max(1, int(settings.sandbox_timeout)),
            memory_bytes=settings.sandbox_memory_mb * 1024 * 1024,
        )
        builder = SandboxedMetadataBuilder(lambda requires: _build_wheels(settings, requires), limits=limits)
    return IndexClient.from_options(
        options, metadata_cache=metadata_cache, hash_cache=hash_cache, metadata_builder=builder
    )


def _build_wheels(settings: Settings, requires: Sequence[str]) -> list[BuildWheel]:
    """An sdist's build requirements, locked by lockd as wheels only for the sandbox's interpreter."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = target_from_spec({"platform": settings.sandbox_platform, "python": python})
    request = LockRequest(
        requirements=parse_requirements("\n".join(requires), source="build-system.requires"),
        constraints=(),
        target=target,
        plan=_plan(settings, target),
        options=LockOptions(only_binary=True),
    )
    static = settings.model_copy(update={"sdist_metadata": "static"})  # build requirements never build
    found: list[BuildWheel] = []
    with (
        index_client(static) as client,
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


def _plan(settings: Settings, target: Target, indexes: Sequence[str] = ()) -> IndexPlan:
    configured = {index.name: index for index in settings.named_indexes}
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
        default_url=settings.index_url,
        pytorch_base=settings.pytorch_index_url,
        family=settings.torch_family_names,
        named=named,
    )


def resolve_standalone(
    settings: Settings,
    request: LockRequest,
    *,
    reporter: ResolveReporter | None = None,
    index: IndexClient | None = None,
) -> tuple[Lock, ResolveStats, FetchStats]:
    """Resolve without a database or server (the `lockd lock` command): in-memory caches only.

    Pass `index` to watch its traffic while it runs (the CLI's progress line); it stays open.
    """
    if index is not None:
        lock, stats = timed_resolve(request, index, settings.resolve_timeout, reporter)
        return lock, stats, index.stats
    with index_client(settings) as own:
        lock, stats = timed_resolve(request, own, settings.resolve_timeout, reporter)
        return lock, stats, own.stats
