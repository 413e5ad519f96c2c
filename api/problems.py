"""Errors as RFC 9457 problem details (`application/problem+json`), one type per kind of problem.

Every error the API returns is a `Problem`: its `type` names the kind (docs/api.md lists them),
`title` is fixed per type, `detail` says what happened this time. Route handlers raise
`ApiProblem`; FastAPI's own errors (404 for an unknown path, 405, request validation) go through
the same handlers, so a client parses one shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("seatledger.api")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:seatledger:problem:"

# type slug -> (status, title)
TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request cannot be read"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden": (403, "This API key may not do this"),
    "out-of-scope": (403, "This API key does not cover this company"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "invalid-request": (422, "The request's parameters are invalid"),
    "rate-limited": (429, "Too many requests for this API key"),
    "internal-error": (500, "Internal error"),
    "kafka-unavailable": (503, "Kafka is unavailable; nothing was accepted, retry later"),
    "database-unavailable": (503, "The ledger database is unavailable; retry later"),
    "keys-unavailable": (503, "The API key file cannot be read; retry later"),
}
_BY_STATUS = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="a URI naming the kind of problem, e.g. urn:seatledger:problem:rate-limited")
    title: str = Field(description="the kind of problem, in words (the same for every problem of the type)")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(None, description="what happened this time")
    instance: str | None = Field(None, description="the request path")
    errors: list[dict[str, Any]] | None = Field(None, description="invalid-request: each invalid parameter")


class ApiProblem(Exception):
    """Raise to answer with a problem of `kind` (a key of TYPES)."""

    def __init__(self, kind: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or kind)
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    kind: str, detail: str | None, instance: str | None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    status, title = TYPES[kind]
    body = Problem(type=TYPE_PREFIX + kind, title=title, status=status, detail=detail, instance=instance, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=headers, media_type=MEDIA_TYPE)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route can answer with (schema Problem, problem+json)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        kinds = [k for k, (s, _) in TYPES.items() if s == status]
        out[status] = {
            "description": "; ".join(TYPES[k][1] for k in kinds) + " (" + ", ".join(kinds) + ")",
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def install(app: FastAPI) -> None:
    """Answer every error of `app` with a problem."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.kind, exc.detail, request.url.path, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _BY_STATUS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error")
        return problem_response(kind, str(exc.detail), request.url.path, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(err['loc'])}: {err['msg']}" for err in errors)
        return problem_response("invalid-request", detail, request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("event=api_error path=%s", request.url.path)
        return problem_response("internal-error", type(exc).__name__, request.url.path)
