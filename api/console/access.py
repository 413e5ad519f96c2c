"""Who is looking at a console page: the session's API key, its scope and whether it may apply.

The same keys and rules as the API (api.keys): a reader or an admin may read, within its companies
(a page of another company is 403); only an admin may apply a dispute correction; a publisher key
cannot log in. Without a live session a page redirects to the login form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from api.console.sessions import COOKIE, Session, Sessions
from api.keys import READ, ApiKey, KeyFileUnreadable, KeyStore

ADMIN = "admin"


class LoginRequired(Exception):
    """No live session: the page redirects to the login form, then back to `path`."""

    def __init__(self, path: str):
        self.path = path

    @property
    def location(self) -> str:
        return "/login?next=" + quote(self.path, safe="/")


class ConsoleError(Exception):
    """A page that cannot be shown: rendered as an HTML error page with `status`."""

    def __init__(self, status: int, title: str, detail: str):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Viewer:
    key: ApiKey
    session: Session

    @property
    def is_admin(self) -> bool:
        return self.key.role == ADMIN

    @property
    def companies(self) -> tuple[str, ...] | None:
        return self.key.companies

    def require_company(self, company: str) -> None:
        if not self.key.covers(company):
            raise ConsoleError(403, "Not your company", f"key {self.key.name!r} does not cover company {company!r}")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ConsoleError(
                403, "Admins only", f"key {self.key.name!r} has role {self.key.role!r}: only admins apply"
            )

    def require_csrf(self, sent: str | None) -> None:
        if not self.session.csrf_ok(sent):
            raise ConsoleError(
                403, "Form expired", "the form's CSRF token does not match this session; reload the page"
            )


def sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions


def readable_key(store: KeyStore, token: str) -> ApiKey | None:
    """The active key `token` names if it may read (reader or admin), else None."""
    try:
        key = store.authenticate(token)
    except KeyFileUnreadable:  # as the API: no key can be checked (api.auth logs it)
        raise ConsoleError(503, "Keys unavailable", "the server cannot read its API keys; try again later") from None
    return key if key is not None and key.can(READ) else None


def viewer(request: Request) -> Viewer:
    """The session's viewer; LoginRequired when there is none or its key was revoked."""
    session = sessions(request).get(request.cookies.get(COOKIE))
    key = readable_key(request.app.state.keys, session.token) if session is not None else None
    if session is None or key is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return Viewer(key, session)


Seen = Annotated[Viewer, Depends(viewer)]  # a console route's viewer
