"""The FastAPI app factory: one router per resource, problem+json everywhere, metrics, logs.

`create_app(settings)` builds everything from the settings it is given (nothing at import).
`app_from_env` is the uvicorn factory (`lockd serve`, including `--workers N`): it reads
`LOCKD_*` and configures JSON logging in each worker process. FastAPI's own /docs and /redoc
load their scripts from a CDN: lockd serves its own page instead (`lockd.http.docs`).

Adding a resource (the drift API, the dashboard): write `lockd/http/<resource>.py` with a
`router`, and add it to `_routers()` below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI

from lockd import __version__
from lockd.accelerator import install_table
from lockd.allocator import return_freed_memory
from lockd.collector import tune_collector
from lockd.config import Settings, load_settings
from lockd.drift_runs import DriftRuns
from lockd.http import (
    advisory_routes,
    blobs,
    dashboard,
    docs,
    drift_routes,
    health,
    lock_writes,
    locks,
    name_pages,
    names,
    sessions,
    tokens,
    why_routes,
)
from lockd.http.admission import Admission
from lockd.http.drift_routes import DriftCollector
from lockd.http.hot_hits import HotHits, HotHitsMiddleware
from lockd.http.logs import configure_logging
from lockd.http.metrics import Metrics
from lockd.http.middleware import BodyLimits, RequestObserver
from lockd.http.problems import install_problem_handlers
from lockd.http.unknown import reject_unknown_query
from lockd.names import Names
from lockd.scheduler import start_drift_helper, start_drift_scheduler
from lockd.service import Service

__all__ = ["app_from_env", "create_app"]

# Blocking work (database, resolutions) runs on this many threads per process; waiters of a
# single-flight resolution hold one each, so it is well above the 40 anyio gives by default.
_THREADS = 128
# Short reads (cache hits, blobs, listings) run on a pool of their own, sized near the cores.
_READ_THREADS = 4


def create_app(settings: Settings, *, service: Service | None = None) -> FastAPI:
    """The lockd HTTP app over `settings` (or over an already opened `service`)."""
    install_table(settings.accelerator_table)
    owned = service is None
    active = service if service is not None else Service.open(settings)
    drift_runs = DriftRuns(active)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.limiter = anyio.CapacityLimiter(_THREADS)
        app.state.read_limiter = anyio.CapacityLimiter(_READ_THREADS)
        scheduler = start_drift_scheduler(settings, drift_runs)  # None unless LOCKD_DRIFT_CRON/INTERVAL
        helper = start_drift_helper(settings, drift_runs)  # None on SQLite
        active.advisories.start_refreshing(settings.advisories_refresh_seconds)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if helper is not None:
                helper.stop()
            if owned:
                active.close()

    app = FastAPI(
        title="lockd",
        version=__version__,
        summary="Dependency locks for ML images: resolve requirements.in for a target, store by digest, serve.",
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
        docs_url=None,
        redoc_url=None,
    )
    metrics = Metrics(active)
    metrics.registry.register(DriftCollector(drift_runs))
    app.state.service = active
    app.state.drift_runs = drift_runs
    app.state.names = Names(active)
    app.state.hot_hits = HotHits()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.limiter = anyio.CapacityLimiter(_THREADS)
    app.state.read_limiter = anyio.CapacityLimiter(_READ_THREADS)
    app.state.admission = Admission(
        max_running=settings.max_resolutions, per_minute=settings.token_resolutions_per_minute
    )
    install_problem_handlers(app)
    for router in (
        lock_writes.router,
        locks.router,
        advisory_routes.router,
        why_routes.router,
        names.router,
        blobs.router,
        health.router,
        drift_routes.router,
        dashboard.router,
        name_pages.router,
        sessions.router,
        tokens.router,
        docs.router,
    ):
        app.include_router(router)
    limits = BodyLimits(
        max_bytes=settings.max_body_bytes, timeout=settings.body_timeout, max_reads=settings.max_body_reads
    )
    # Inside the observer (added last, so outermost): limits, logs and metrics cover hot hits too.
    app.add_middleware(HotHitsMiddleware, hits=app.state.hot_hits, service=active, metrics=metrics)
    app.add_middleware(RequestObserver, limits=limits, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    # Before any thread allocates: a worker's RSS after a big cold resolution stays ~80 MB lower.
    return_freed_memory()
    settings = load_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    # A serving worker will parse big pages: its page process loads its parsers now, off the
    # first resolution's path (an app made for a test starts it with its first big page).
    app.state.service.index.start_page_worker()
    tune_collector()  # after start-up's imports, which it freezes
    return app
