"""The app factory: `create_app(config)` -> the FastAPI app `seatledger serve` runs.

The app's state holds what its routes share: the config, the key store, the rate limiter, the read
model's ledger, the Kafka producer and the metrics. A console would be another set of routers
included here, over the same state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from api import problems
from api.config import ApiConfig
from api.console import site as console_site
from api.keys import KeyStore
from api.metrics import ApiMetrics
from api.problems import Problem, problem_response
from api.producer import EventProducer
from api.ratelimit import RateLimiter
from api.readmodel import DatabaseUnavailable, Ledger, NotFound
from api.routes import accounts, docs, estimates, events, invoices, operations
from schemas.events import Event

TITLE = "seatledger API"
VERSION = "1"
DESCRIPTION = """Per-seat billing over HTTP: publish events, read issued invoices and decisions, and the
bill so far. Authenticate with `Authorization: Bearer <key>` (`seatledger api-key create`). Money is a
decimal string (USD), times are RFC 3339, errors are RFC 9457 problem details. See docs/api.md."""


def create_app(config: ApiConfig, *, keys: KeyStore | None = None) -> FastAPI:
    """The app over `config`; `keys` shares a key store between apps (tests), else one is opened."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        console_site.close(app)
        await app.state.producer.close()

    # /docs is api.routes.docs (Swagger UI from this package); FastAPI's own pages load it from CDNs
    app = FastAPI(
        title=TITLE, version=VERSION, description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.config = config
    app.state.keys = keys or KeyStore(config.keys_file)
    app.state.limiter = RateLimiter(config.api.rate_per_second, config.api.burst)
    app.state.ledger = Ledger(config.db, config.api.db_timeout_seconds)
    app.state.producer = EventProducer(config.settings, pack=config.api.pack, timeout=config.api.kafka_timeout_seconds)
    app.state.metrics = ApiMetrics()
    problems.install(app)
    _read_model_errors(app)
    app.state.metrics.install(app)
    for module in (events, invoices, accounts, estimates, operations, docs):
        app.include_router(module.router)
    console_site.install(app, config)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _read_model_errors(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response("not-found", str(exc), request.url.path)

    @app.exception_handler(DatabaseUnavailable)
    async def unavailable(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return problem_response("database-unavailable", str(exc), request.url.path, {"Retry-After": "5"})


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the schemas it cannot see: Problem (the problem responses) and the
    event contract (POST /v1/events reads its body itself), as schemas/json publishes it."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        event = TypeAdapter(Event).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(event.pop("$defs"))
        schemas["Event"] = event | {"description": "one event of the contract (docs/contract.md)"}
        app.openapi_schema = doc
    return app.openapi_schema
