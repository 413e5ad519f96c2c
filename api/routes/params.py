"""The path and query parameters the routes share, validated as the contract spells them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from api import pagination
from api.readmodel import Ledger

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"  # company_id and user_id in the event contract
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

MonthPath = Annotated[
    str, Path(pattern=MONTH_PATTERN, description="YYYY-MM, in each company's billing zone", examples=["2026-10"])
]
CompanyPath = Annotated[str, Path(pattern=ID_PATTERN, description="company_id", examples=["acme"])]
UserPath = Annotated[str, Path(pattern=ID_PATTERN, description="user_id", examples=["ann"])]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT, description="rows per page")]


def ledger(request: Request) -> Ledger:
    return request.app.state.ledger


Db = Annotated[Ledger, Depends(ledger)]
