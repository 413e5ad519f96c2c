"""Billed decisions: a company-month's accounts (cursor-paginated) and one account's versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import pagination, problems, readmodel
from api.auth import Reader, require_company
from api.models import AccountHistory, AccountPage
from api.routes.params import CompanyPath, Cursor, Db, Limit, MonthPath, UserPath

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.get(
    "/companies/{company}/months/{month}/accounts",
    response_model=AccountPage,
    summary="Every account's latest decision, with rule, reason and evidence, by user_id",
    responses=problems.responses(400, 401, 403, 404, 422, 429, 503),
)
def accounts(
    company: CompanyPath,
    month: MonthPath,
    key: Reader,
    db: Db,
    billable: Annotated[bool | None, Query(description="only billable (true) or not billable (false)")] = None,
    cursor: Cursor = None,
    limit: Limit = pagination.DEFAULT_LIMIT,
) -> dict:
    require_company(key, company)
    after = pagination.decode(cursor)
    with db.connect() as con:
        rows, last = readmodel.accounts_page(con, company, month, billable, after, limit)
    return {"company_id": company, "month": month, "accounts": rows, "next_cursor": pagination.encode(last)}


@router.get(
    "/companies/{company}/months/{month}/accounts/{user}",
    response_model=AccountHistory,
    summary="One account's decision: every version, why it exists and what changed",
    responses=problems.responses(401, 403, 404, 422, 429, 503),
)
def account(company: CompanyPath, month: MonthPath, user: UserPath, key: Reader, db: Db) -> dict:
    require_company(key, company)
    with db.connect() as con:
        return readmodel.account_history(con, company, month, user)
