"""Rendering a console page: Jinja2 templates shipped in the package, every value escaped.

Autoescaping is on for every template, so an `event_id` or a PO number with markup shows as
text; the only unescaped values are the SVG charts (api.console.charts), which Vega writes with
its own escaping. Pages carry a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from api.console.access import Viewer

CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def usd(value: Any) -> str:
    """A money value (Decimal or decimal string) as 'USD 1,234.50'."""
    if value is None:
        return "-"
    return f"USD {Decimal(str(value)):,.2f}"


def count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


ENV = Environment(
    loader=PackageLoader("api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(usd=usd, count=count)


def svg(text: str) -> Markup:
    """A chart's SVG, written by vl-convert, placed as is."""
    return Markup(text)


def render(
    request: Request, template: str, viewer: Viewer | None = None, status: int = 200, **context: Any
) -> HTMLResponse:
    html = ENV.get_template(template).render(request=request, viewer=viewer, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
