"""Mounting the console in the API's app: its routes (left out of the OpenAPI document), static
files, sessions, the dispute worker and the error pages.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.config import ApiConfig
from api.console import charts
from api.console.access import ConsoleError, LoginRequired
from api.console.disputes import Disputes
from api.console.pages import render
from api.console.routes import accounts, companies, exports, login, months
from api.console.sessions import Sessions

STATIC = "/static"


def install(app: FastAPI, config: ApiConfig) -> None:
    """The console's state, routes and error pages on `app`."""
    console = config.console
    app.state.console_sessions = Sessions(console.session_secret, console.session_minutes * 60)
    app.state.console_disputes = Disputes(config.settings, console.apply_timeout_seconds)
    app.mount(STATIC, StaticFiles(packages=[("api.console", "static")]), name="console-static")
    for module in (login, months, companies, accounts, exports):
        app.include_router(module.router)
    _errors(app)
    threading.Thread(target=charts.warm_up, name="vl-convert-warm-up", daemon=True).start()


def close(app: FastAPI) -> None:
    app.state.console_disputes.close()


def _errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_first(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(ConsoleError)
    async def error_page(request: Request, exc: ConsoleError) -> Response:
        return render(request, "error.html", status=exc.status, error=exc)
