"""Who is calling: the API key of a request (`Authorization: Bearer <key>`), its role and scope.

Roles grant actions (api.keys.GRANTS): publisher publishes, reader reads, admin does both. A key
with `--company` scopes sees only those companies: a read of another company is 403
(out-of-scope), a published event of another company is rejected with a reason. No key, an
unknown, malformed or revoked key: 401. Each key is also rate-limited (api.ratelimit): 429.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.keys import PUBLISH, READ, ApiKey, KeyFileUnreadable, KeyStore
from api.problems import ApiProblem
from api.ratelimit import RateLimiter, retry_after_header

log = logging.getLogger("seatledger.api")
bearer = HTTPBearer(auto_error=False, description="an API key made by `seatledger api-key create`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="seatledger"'}


def _store(request: Request) -> KeyStore:
    return request.app.state.keys


def _limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


def api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    store: Annotated[KeyStore, Depends(_store)],
    limiter: Annotated[RateLimiter, Depends(_limiter)],
) -> ApiKey:
    """The request's active API key, within its rate limit. Sync on purpose: argon2 runs in a thread."""
    if credentials is None:
        raise ApiProblem("unauthorized", "send the API key as 'Authorization: Bearer <key>'", _CHALLENGE)
    try:
        key = store.authenticate(credentials.credentials)
    except KeyFileUnreadable as exc:  # no key can be checked: fail closed, and say it is not the caller's key
        log.error("event=api_keys_unreadable %s", exc)
        raise ApiProblem("keys-unavailable", "the server cannot read its API keys", {"Retry-After": "5"}) from None
    if key is None:
        raise ApiProblem("unauthorized", "unknown, malformed or revoked API key", _CHALLENGE)
    wait = limiter.take(key.key_id)
    if wait:
        raise ApiProblem(
            "rate-limited",
            f"key {key.name!r} is over {limiter.rate:g} requests/s (burst {limiter.burst}); retry in {wait:.2f}s",
            {"Retry-After": retry_after_header(wait)},
        )
    return key


def allowed(action: str) -> Callable[..., ApiKey]:
    """A dependency: the request's key, which must grant `action` (403 otherwise)."""

    def check(key: Annotated[ApiKey, Depends(api_key)]) -> ApiKey:
        if not key.can(action):
            raise ApiProblem("forbidden", f"key {key.name!r} has role {key.role!r}, which may not {action}")
        return key

    return check


Publisher = Annotated[ApiKey, Depends(allowed(PUBLISH))]  # a route's key, which may publish
Reader = Annotated[ApiKey, Depends(allowed(READ))]  # a route's key, which may read


def require_company(key: ApiKey, company: str) -> None:
    """403 (out-of-scope) unless `key` covers `company`."""
    if not key.covers(company):
        raise ApiProblem("out-of-scope", f"key {key.name!r} does not cover company {company!r}")
