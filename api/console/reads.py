"""What the console's pages show beyond the API's read model (api.readmodel): a month's totals by
plan and tier, revenue over twelve months, decisions by rule and reason, adjustments, disputes and
the close certificate; a company's daily MAU. Complete months only, scoped like the API: with
`companies` given, only those companies count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.readmodel import Con, fetch_dicts, money, stamp
from projections.calendar import Month
from projections.decide import DECISION_COLUMNS, Decision

Scope = Sequence[str] | None


def _scoped(column: str, companies: Scope, params: list[Any]) -> str:
    """An extra `AND` on `column` for a scoped key (its parameter appended to `params`)."""
    if companies is None:
        return ""
    params.append(list(companies))
    return f" AND list_contains(?, {column})"


def complete_months(con: Con) -> list[str]:
    """The complete months, latest first."""
    return [r["month"] for r in fetch_dicts(con, "SELECT month FROM month_completions ORDER BY month DESC")]


def lines_by_plan_tier(con: Con, month: str, companies: Scope) -> list[dict]:
    """Seats and amounts invoiced in `month` per plan and tier."""
    params: list[Any] = [month]
    rows = fetch_dicts(
        con,
        "SELECT plan, tier, sum(count)::BIGINT AS seats, sum(amount_usd) AS amount_usd FROM invoice_lines "
        f"WHERE month = ?{_scoped('company_id', companies, params)} GROUP BY plan, tier ORDER BY plan, tier",
        params,
    )
    return [r | {"amount_usd": money(r["amount_usd"])} for r in rows]


def last_months(month: str, n: int = 12) -> list[str]:
    """`n` months ending with `month`, oldest first."""
    out, m = [], Month.parse(month)
    for _ in range(n):
        out.append(str(m))
        m = m.prev()
    return out[::-1]


def revenue_by_month(con: Con, month: str, companies: Scope) -> list[dict]:
    """Invoiced amounts per month, plan and tier over the twelve months ending with `month`."""
    params: list[Any] = [last_months(month)]
    rows = fetch_dicts(
        con,
        "SELECT month, plan || ' ' || tier AS series, sum(amount_usd) AS amount_usd FROM invoice_lines "
        f"WHERE list_contains(?, month){_scoped('company_id', companies, params)} GROUP BY ALL ORDER BY month, series",
        params,
    )
    return [r | {"amount_usd": float(r["amount_usd"])} for r in rows]


def decisions_by_rule(con: Con, month: str, companies: Scope) -> list[dict]:
    """The month's latest decisions counted by rule and reason, largest first."""
    params: list[Any] = [month]
    return fetch_dicts(
        con,
        "SELECT rule, reason, count(*)::BIGINT AS accounts, count(*) FILTER (WHERE billable)::BIGINT AS billable "
        f"FROM latest_decisions WHERE month = ?{_scoped('company_id', companies, params)} "
        "GROUP BY rule, reason ORDER BY accounts DESC, rule, reason",
        params,
    )


def adjustments(con: Con, month: str, companies: Scope) -> list[dict]:
    """Corrections of `month`, and those carried by its invoices."""
    params: list[Any] = [month, month]
    rows = fetch_dicts(
        con,
        "SELECT * FROM invoice_adjustments WHERE (corrected_month = ? OR applied_to_invoice_month = ?)"
        f"{_scoped('company_id', companies, params)} ORDER BY company_id, corrected_month, user_id, new_version",
        params,
    )
    return [r | {"amount_usd": money(r["amount_usd"]), "created_at": stamp(r["created_at"])} for r in rows]


def disputes(con: Con, month: str, companies: Scope) -> list[dict]:
    params: list[Any] = [month]
    return fetch_dicts(
        con,
        "SELECT ticket, company_id, requested_by, applied_at FROM disputes "
        f"WHERE month = ?{_scoped('company_id', companies, params)} ORDER BY applied_at, ticket",
        params,
    )


def certificate(con: Con, month: str) -> dict | None:
    """The month's close certificate: counts over every company and the two checksums."""
    rows = fetch_dicts(con, "SELECT * FROM close_certificates WHERE month = ?", [month])
    return rows[0] | {"completed_at": stamp(rows[0]["completed_at"])} if rows else None


def mau_series(con: Con, company: str, month: str) -> list[dict]:
    """R14's daily MAU of the company-month (the close's series, latest version)."""
    return fetch_dicts(
        con, "SELECT day, mau FROM mau_daily WHERE company_id = ? AND month = ? ORDER BY day", [company, month]
    )


def billed_decisions(con: Con, company: str, month: str) -> list[Decision]:
    """The latest decision of every billable account, by user_id: R13's export rows."""
    rows = fetch_dicts(
        con,
        "SELECT * FROM latest_decisions WHERE company_id = ? AND month = ? AND billable ORDER BY user_id",
        [company, month],
    )
    return [Decision(**{c: r[c] for c in DECISION_COLUMNS}, plan=r["plan"]) for r in rows]
