"""Prometheus metrics of one app: requests, resolutions, cache hits, resolve time, index traffic.

Each app has its own registry (tests run several apps in one process). Index traffic is read
from the service's `IndexClient.stats` at scrape time rather than counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily

from lockd.service import LockResult, Service

__all__ = ["Metrics"]

_RESOLVE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _IndexCollector:
    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Any]:
        stats = self._service.index.stats
        yield CounterMetricFamily(
            "lockd_index_bytes_fetched", "Bytes fetched from package indexes", value=stats.bytes_fetched
        )
        yield CounterMetricFamily(
            "lockd_index_requests", "HTTP requests made to package indexes", value=stats.requests
        )
        cache = self._service.metadata_cache
        if cache is not None:
            yield CounterMetricFamily(
                "lockd_metadata_cache_hits", "Core metadata served from the database cache", value=cache.hits
            )
            yield CounterMetricFamily(
                "lockd_metadata_cache_misses", "Core metadata not in the database cache", value=cache.misses
            )


class Metrics:
    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lockd_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "lockd_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route"],
            registry=self.registry,
        )
        self.resolutions = Counter(
            "lockd_resolutions",
            "Resolutions run by this process, by outcome (created, refreshed, unchanged, or an error code)",
            ["outcome"],
            registry=self.registry,
        )
        self.lock_cache_hits = Counter(
            "lockd_lock_cache_hits",
            "Lock requests answered from the store without resolving",
            registry=self.registry,
        )
        self.resolve_seconds = Histogram(
            "lockd_resolve_duration_seconds",
            "Time spent resolving",
            buckets=_RESOLVE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_IndexCollector(service))
        service.on_resolution = self.observe_resolution

    def observe_resolution(self, outcome: str, seconds: float) -> None:
        """Every resolution this process ran, successful or not (waiters are not counted)."""
        self.resolutions.labels(outcome=outcome).inc()
        self.resolve_seconds.observe(seconds)

    def observe_lock(self, result: LockResult) -> None:
        if result.stats is None:
            self.lock_cache_hits.inc()
