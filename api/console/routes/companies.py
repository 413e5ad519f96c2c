"""The company-month page: the invoice, every account's decision (searchable, paginated), daily MAU
against billed seats, and the bill so far (provisional) when there is an estimate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import readmodel
from api.console import charts, reads
from api.console.access import ConsoleError, Seen
from api.console.pages import render, svg
from api.console.routes.reading import reading
from api.readmodel import Con, NotFound
from api.routes.params import CompanyPath, MonthPath

router = APIRouter(include_in_schema=False)
SHOW = {"all": None, "billed": True, "not_billed": False}


def _estimate(con: Con, company: str, month: str) -> dict | None:
    try:
        return readmodel.estimate(con, company, month, None, None, 1)[0]
    except NotFound:
        return None


def mau_chart(company: str, month: str, mau: list[dict], billed: int | None) -> str | None:
    if not mau:
        return None
    days = [{"day": r["day"], "value": r["mau"]} for r in mau]
    level = billed or 0
    spec = charts.daily_against_level(
        f"{company}, {month}: monthly-active users per day (R14, rolling 30 days) against billed seats",
        days, level, f"billed seats: {level:,}", "accounts",
    )  # fmt: skip
    return svg(charts.render(spec))


@router.get("/companies/{company}/months/{month}")
def company_month(
    request: Request,
    viewer: Seen,
    company: CompanyPath,
    month: MonthPath,
    q: Annotated[str, Query(max_length=64)] = "",
    show: Literal["all", "billed", "not_billed"] = "all",
    after: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    viewer.require_company(company)
    size = request.app.state.config.console.page_size
    with reading(request) as con:
        complete = month in reads.complete_months(con)
        invoice = readmodel.company_invoice(con, company, month) if complete else None
        accounts, more = (
            readmodel.accounts_page(con, company, month, SHOW[show], after or None, size, q.strip() or None)
            if complete
            else ([], None)
        )
        mau = reads.mau_series(con, company, month)
        estimate = _estimate(con, company, month)
    if invoice is None and estimate is None:
        raise ConsoleError(404, "Not found", f"no invoice and no estimate for company {company!r} in {month}")
    return render(
        request, "company.html", viewer, company=company, month=month, invoice=invoice, accounts=accounts,
        next_after=more, q=q, show=show, after=after, estimate=estimate,
        mau_chart=mau_chart(company, month, mau, invoice["billable_accounts"] if invoice else None),
        current_month=datetime.now(UTC).strftime("%Y-%m"),
    )  # fmt: skip
