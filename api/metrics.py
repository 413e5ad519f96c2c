"""The API's Prometheus metrics, served on its own `/metrics`: requests by route and status, their
latency, and the events accepted and rejected by POST /v1/events.

One registry per app (tests start several apps in one process). `route` is the route's path
template (`/v1/companies/{company}/months/{month}/invoice`), never the raw path, so the number of
series stays bounded; requests that match no route count as `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "seatledger_api_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "seatledger_api_request_seconds",
            "time to answer a request",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.events_accepted = Counter("seatledger_api_events_accepted", "events acknowledged by Kafka", registry=r)
        self.events_rejected = Counter(
            "seatledger_api_events_rejected", "events rejected (contract or scope)", registry=r
        )

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def install(self, app: FastAPI) -> None:
        """Count and time every request of `app`."""

        @app.middleware("http")
        async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            start = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = getattr(request.scope.get("route"), "path", "unmatched")
                self.requests.labels(request.method, route, str(status)).inc()
                self.latency.labels(request.method, route).observe(time.perf_counter() - start)
