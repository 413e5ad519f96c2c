"""The bill so far: the latest estimate of a company-month, provisional, apart from billed data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import pagination, problems, readmodel
from api.auth import Reader, require_company
from api.models import Estimate, Status
from api.routes.params import CompanyPath, Cursor, Db, Limit, MonthPath

router = APIRouter(prefix="/v1", tags=["estimates"])


@router.get(
    "/companies/{company}/months/{month}/estimate",
    response_model=Estimate,
    summary="The bill so far (provisional): each account on_track, at_risk or not_billed, and the invoice",
    responses=problems.responses(400, 401, 403, 404, 422, 429, 503),
)
def estimate(
    company: CompanyPath,
    month: MonthPath,
    key: Reader,
    db: Db,
    status: Annotated[Status | None, Query(description="only accounts with this status")] = None,
    cursor: Cursor = None,
    limit: Limit = pagination.DEFAULT_LIMIT,
) -> dict:
    require_company(key, company)
    after = pagination.decode(cursor)
    with db.connect() as con:
        body, last = readmodel.estimate(con, company, month, status, after, limit)
    return body | {"next_cursor": pagination.encode(last)}
