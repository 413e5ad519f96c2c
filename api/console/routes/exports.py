"""Downloads: the billed-users CSV (R13, the bytes of `seatledger export`), invoices as JSON (the
API's shapes) and CSV, and an account's versions as JSON."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import readmodel
from api.console import reads
from api.console.access import Seen
from api.console.routes.reading import reading
from api.routes.params import CompanyPath, MonthPath, UserPath
from projections.exports import billed_users_csv, csv_text, plain

router = APIRouter(include_in_schema=False)
CSV = "text/csv; charset=utf-8"
SUMMARY_COLUMNS = ("company_id", "month", "plan", "billable_accounts", "charged_accounts", "subtotal_usd",
                   "adjustments_usd", "total_usd", "currency", "taxes", "po_number", "latest_annotated_po_number",
                   "free_reason", "issued_at")  # fmt: skip


def download(body: str | bytes, filename: str, media_type: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type=media_type, headers=headers)


def json_body(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


def table(columns: Sequence[str], rows: Iterable[dict]) -> str:
    return csv_text(columns, ([plain(r.get(c)) for c in columns] for r in rows))


@router.get("/months/{month}/invoices.json")
def month_invoices_json(request: Request, viewer: Seen, month: MonthPath) -> Response:
    with reading(request) as con:
        body = readmodel.month_invoices(con, month, viewer.companies)
    return download(json_body(body), f"invoices-{month}.json", "application/json")


@router.get("/months/{month}/invoices.csv")
def month_invoices_csv(request: Request, viewer: Seen, month: MonthPath) -> Response:
    with reading(request) as con:
        body = readmodel.month_invoices(con, month, viewer.companies)
    return download(table(SUMMARY_COLUMNS, body["invoices"]), f"invoices-{month}.csv", CSV)


@router.get("/companies/{company}/months/{month}/billed-users.csv")
def billed_users(request: Request, viewer: Seen, company: CompanyPath, month: MonthPath) -> Response:
    """R13, the same writer and bytes as `seatledger export --company C --month M`."""
    viewer.require_company(company)
    with reading(request) as con:
        readmodel.company_invoice(con, company, month)  # 404 unless issued
        decisions = reads.billed_decisions(con, company, month)
    return download(billed_users_csv(decisions), f"billed-users-{company}-{month}.csv", CSV)


@router.get("/companies/{company}/months/{month}/invoice.json")
def invoice_json(request: Request, viewer: Seen, company: CompanyPath, month: MonthPath) -> Response:
    viewer.require_company(company)
    with reading(request) as con:
        body = readmodel.company_invoice(con, company, month)
    return download(json_body(body), f"invoice-{company}-{month}.json", "application/json")


def invoice_rows(invoice: dict) -> Iterable[dict]:
    """The invoice as rows: its lines, the adjustments it carries, then subtotal and total."""
    for line in invoice["lines"]:
        yield {"kind": "line"} | line
    for a in invoice["adjustments"]:
        yield {"kind": "adjustment", "count": None} | a
    yield {"kind": "subtotal", "amount_usd": invoice["subtotal_usd"]}
    yield {"kind": "total", "amount_usd": invoice["total_usd"]}


@router.get("/companies/{company}/months/{month}/invoice.csv")
def invoice_csv(request: Request, viewer: Seen, company: CompanyPath, month: MonthPath) -> Response:
    viewer.require_company(company)
    with reading(request) as con:
        body = readmodel.company_invoice(con, company, month)
    columns = ("kind", "plan", "tier", "count", "unit_price_usd", "amount_usd", "corrected_month", "user_id",
               "corrects_version", "new_version", "reason")  # fmt: skip
    return download(table(columns, invoice_rows(body)), f"invoice-{company}-{month}.csv", CSV)


@router.get("/companies/{company}/months/{month}/accounts/{user}/versions.json")
def account_json(request: Request, viewer: Seen, company: CompanyPath, month: MonthPath, user: UserPath) -> Response:
    viewer.require_company(company)
    with reading(request) as con:
        body = readmodel.account_history(con, company, month, user)
    return download(json_body(body), f"account-{company}-{month}-{user}.json", "application/json")
