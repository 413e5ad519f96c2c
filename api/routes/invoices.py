"""Issued invoices: a month's, and one company-month's with its lines, adjustments and annotations."""

from __future__ import annotations

from fastapi import APIRouter

from api import problems, readmodel
from api.auth import Reader, require_company
from api.models import Invoice, MonthInvoices
from api.routes.params import CompanyPath, Db, MonthPath

router = APIRouter(prefix="/v1", tags=["invoices"])


@router.get(
    "/months/{month}/invoices",
    response_model=MonthInvoices,
    summary="The month's issued invoices (of the key's companies)",
    responses=problems.responses(401, 403, 422, 429, 503),
)
def month_invoices(month: MonthPath, key: Reader, db: Db) -> dict:
    with db.connect() as con:
        return readmodel.month_invoices(con, month, key.companies)


@router.get(
    "/companies/{company}/months/{month}/invoice",
    response_model=Invoice,
    summary="One issued invoice: lines, adjustments carried, later corrections, annotations",
    responses=problems.responses(401, 403, 404, 422, 429, 503),
)
def company_invoice(company: CompanyPath, month: MonthPath, key: Reader, db: Db) -> dict:
    require_company(key, company)
    with db.connect() as con:
        return readmodel.company_invoice(con, company, month)
