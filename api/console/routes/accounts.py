"""The account page: the decision and every version of it, its evidence on a timeline across the
month, and the dispute view (the recomputation from the archive and what differs) with, for admins,
a correction applied under a ticket after a confirmation step: `seatledger dispute --user U
--apply --reference TICKET`, run by api.console.disputes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api import readmodel
from api.console import charts
from api.console.access import ConsoleError, Seen, Viewer
from api.console.disputes import TICKET, TICKET_RULE, DisputeError, Disputes
from api.console.pages import render, svg
from api.console.routes.reading import reading
from api.routes.params import CompanyPath, MonthPath, UserPath
from projections.calendar import Month

router = APIRouter(include_in_schema=False)
PAGE = "/companies/{company}/months/{month}/accounts/{user}"
Text = Annotated[str, Form(max_length=128)]


def _disputes(request: Request) -> Disputes:
    return request.app.state.console_disputes


def evidence_events(versions: list[dict]) -> list[dict]:
    """Every event any version cites, once, oldest first, with its wall time in the company's zone."""
    seen: dict[str, dict] = {}
    for v in versions:
        for e in v["evidence"]:
            at = datetime.fromisoformat(e["occurred_at"])
            seen.setdefault(e["event_id"], e | {"at": at.replace(tzinfo=None), "offset": at.strftime("%z")})
    return sorted(seen.values(), key=lambda e: (e["at"], e["event_id"]))


def month_span(month: str) -> tuple[datetime, datetime]:
    """The month's first and end instants as wall time: day 1 at 00:00 to the next month's day 1."""
    m = Month.parse(month)
    return datetime.combine(m.first_day, datetime.min.time()), datetime.combine(m.next().first_day, datetime.min.time())


def timeline_chart(user: str, month: str, events: list[dict]) -> str | None:
    start, end = month_span(month)
    inside = [e for e in events if start <= e["at"] <= end]
    if not inside:
        return None
    return svg(charts.render(charts.timeline(f"Evidence of {user} in {month}", inside, start, end)))


def dispute_view(request: Request, company: str, month: str, user: str) -> tuple[dict | None, str | None]:
    """(the account's entry of the dispute report, the report's summary), or (None, why not)."""
    try:
        report = _disputes(request).report(company, month, user)
    except DisputeError as exc:
        return None, str(exc)
    entry = next((a for a in report["accounts"] if a["user_id"] == user), None)
    return {"report": report, "account": entry}, None


@router.get(PAGE)
def account(
    request: Request, viewer: Seen, company: CompanyPath, month: MonthPath, user: UserPath, applied: str = ""
) -> Response:
    viewer.require_company(company)
    with reading(request) as con:
        history = readmodel.account_history(con, company, month, user)
    events = evidence_events(history["versions"])
    dispute, unavailable = dispute_view(request, company, month, user)
    return render(
        request, "account.html", viewer, company=company, month=month, user=user, history=history, events=events,
        timeline=timeline_chart(user, month, events), dispute=dispute, dispute_unavailable=unavailable,
        applied=applied if TICKET.fullmatch(applied) else "",
    )  # fmt: skip


def _checked(viewer: Viewer, company: str, csrf: str, ticket: str) -> str:
    viewer.require_company(company)
    viewer.require_admin()
    viewer.require_csrf(csrf)
    ticket = ticket.strip()
    if not TICKET.fullmatch(ticket):
        raise ConsoleError(400, "Invalid ticket", TICKET_RULE)
    return ticket


@router.post(PAGE + "/dispute")
def confirm(
    request: Request, viewer: Seen, company: CompanyPath, month: MonthPath, user: UserPath,
    ticket: Text, csrf: Text, requested_by: Text = "",
) -> Response:  # fmt: skip
    """Step one: what the correction would change, and a button to apply it."""
    ticket = _checked(viewer, company, csrf, ticket)
    dispute, unavailable = dispute_view(request, company, month, user)
    if dispute is None:
        raise ConsoleError(503, "No recomputation", unavailable or "")
    return render(
        request, "confirm.html", viewer, company=company, month=month, user=user, ticket=ticket,
        requested_by=requested_by.strip() or viewer.key.name, dispute=dispute,
    )  # fmt: skip


@router.post(PAGE + "/dispute/apply")
def apply(
    request: Request, viewer: Seen, company: CompanyPath, month: MonthPath, user: UserPath,
    ticket: Text, csrf: Text, requested_by: Text = "",
) -> Response:  # fmt: skip
    """Step two: publish the correction and wait for the sink to store it, then back to the account."""
    ticket = _checked(viewer, company, csrf, ticket)
    try:
        _disputes(request).apply(company, month, user, ticket, requested_by.strip() or viewer.key.name)
    except DisputeError as exc:
        raise ConsoleError(502, "The correction was not applied", str(exc)) from None
    target = PAGE.format(company=company, month=month, user=user) + f"?applied={ticket}"
    return RedirectResponse(target, status_code=303)
