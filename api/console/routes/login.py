"""Logging in with an API key (once per session) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.console.access import Seen, readable_key, sessions
from api.console.pages import render
from api.console.sessions import COOKIE

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Back to a page of this site only: a path, never another host (`//host`, `/\\host`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=_safe_next(next), failed=False)


@router.post("/login")
def login(request: Request, key: Annotated[str, Form(max_length=512)], next: Annotated[str, Form()] = "/") -> Response:
    """A session for a reader or admin key; the form again (401) for any other."""
    token = key.strip()
    if readable_key(request.app.state.keys, token) is None:
        return render(request, "login.html", status=401, next=_safe_next(next), failed=True)
    response = RedirectResponse(_safe_next(next), status_code=303)
    config = request.app.state.config.console
    response.set_cookie(
        COOKIE,
        sessions(request).open(token),
        max_age=config.session_minutes * 60,
        secure=config.secure_cookie,
        httponly=True,
        samesite="lax",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, viewer: Seen, csrf: Annotated[str, Form()] = "") -> Response:
    viewer.require_csrf(csrf)
    sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
