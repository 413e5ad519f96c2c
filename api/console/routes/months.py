"""The month overview: totals by plan and tier, the invoices, adjustments and disputes, whether the
month is complete with its close certificate, and three charts."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import readmodel
from api.console import charts, reads
from api.console.access import Seen, Viewer
from api.console.pages import render, svg
from api.console.routes.reading import reading
from api.routes.params import MonthPath
from projections.money import total

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, viewer: Seen) -> Response:
    """The latest complete month; an empty overview before any month is complete."""
    with reading(request) as con:
        months = reads.complete_months(con)
    return month_page(request, viewer, months[0] if months else None, months)


@router.get("/months/{month}")
def month(request: Request, viewer: Seen, month: MonthPath) -> Response:
    with reading(request) as con:
        months = reads.complete_months(con)
    return month_page(request, viewer, month, months)


def seats_rows(invoices: list[dict], top: int) -> list[dict]:
    """Billed seats per company, the `top` largest one by one and the rest summed."""
    ranked = sorted(invoices, key=lambda i: (-i["billable_accounts"], i["company_id"]))
    rows = [{"company": i["company_id"], "seats": i["billable_accounts"]} for i in ranked[:top]]
    rest = ranked[top:]
    if rest:
        rows.append({"company": f"the other {len(rest)} companies", "seats": sum(i["billable_accounts"] for i in rest)})
    return rows


def month_page(request: Request, viewer: Viewer, month: str | None, months: list[str]) -> Response:
    if month is None:
        return render(request, "month.html", viewer, month=None, months=months)
    scope = viewer.companies
    with reading(request) as con:
        listing = readmodel.month_invoices(con, month, scope)
        lines = reads.lines_by_plan_tier(con, month, scope)
        rules = reads.decisions_by_rule(con, month, scope)
        revenue = reads.revenue_by_month(con, month, scope)
        adjustments = reads.adjustments(con, month, scope)
        disputes = reads.disputes(con, month, scope)
        certificate = reads.certificate(con, month) if scope is None else None  # counts over every company
    invoices = listing["invoices"]
    top = request.app.state.config.console.top_companies
    return render(
        request, "month.html", viewer, month=month, months=months, listing=listing, totals=month_totals(invoices),
        lines=lines, rules=rules, adjustments=adjustments, disputes=disputes, certificate=certificate,
        charts=month_charts(month, invoices, rules, revenue, top),
    )  # fmt: skip


def month_totals(invoices: list[dict]) -> dict:
    return {
        "billed": sum(i["billable_accounts"] for i in invoices),
        "charged": sum(i["charged_accounts"] for i in invoices),
        "subtotal": total(Decimal(i["subtotal_usd"]) for i in invoices),
        "adjustments": total(Decimal(i["adjustments_usd"]) for i in invoices),
        "total": total(Decimal(i["total_usd"]) for i in invoices),
    }


def month_charts(month: str, invoices: list[dict], rules: list[dict], revenue: list[dict], top: int) -> dict:
    by_rule = [{"rule": f"{r['rule']} {r['reason']}", "accounts": r["accounts"]} for r in rules]
    return {
        "seats": svg(charts.render(charts.bars(f"Billed seats per company, {month}", seats_rows(invoices, top),
                                               "company", "seats", "billed seats (accounts)", name="seats"))),
        "revenue": svg(charts.render(charts.series(f"Revenue by plan and tier, 12 months to {month}", revenue,
                                                   "month", "amount_usd", "series", "invoiced (USD, taxes excluded)", "month"))),
        "rules": svg(charts.render(charts.bars(f"Decisions by rule and reason, {month}", by_rule, "rule", "accounts",
                                               "accounts (latest decisions)", name="rules"))),
    }  # fmt: skip
