"""The read model: what the API (and a console beside it) shows, read from the ledger's DuckDB file.

Every request reads the file read-only for its queries only (ledger.connection.SharedReadOnly), the
way the sink allows readers between its batches: the file is attached while requests read it and
detached when none does. Billed data comes from complete months only (a month
appears once every partition reported and everything is stored: never half a month); estimates
from their own tables, never mixed with it. Functions return plain dicts shaped like api.models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ledger.connection import DatabaseBusy, SharedReadOnly, run
from projections.calendar import utc_iso
from projections.decide import DECISION_COLUMNS
from projections.invoice import CURRENCY, TAXES

Con = duckdb.DuckDBPyConnection


class NotFound(LookupError):
    """Nothing to show for what was asked (the text says what is missing)."""


class DatabaseUnavailable(RuntimeError):
    """The ledger file is missing, or locked for longer than the timeout."""


class Ledger:
    """The DuckDB file the sink writes, read-only for the duration of each request.

    One per file and process (the app's `state.ledger`; a console beside the API uses the same):
    see SharedReadOnly for why a second one would be unsafe."""

    def __init__(self, path: Path, timeout: float):
        self.path = Path(path)
        self.file = SharedReadOnly(self.path, timeout)

    @contextmanager
    def connect(self) -> Iterator[Con]:
        if not self.path.exists():
            raise DatabaseUnavailable(f"no ledger database at {self.path} (has `seatledger sink` run?)")
        try:
            with self.file.cursor() as con:
                yield con
        except (DatabaseBusy, duckdb.IOException) as exc:  # locked too long, or not a DuckDB file
            raise DatabaseUnavailable(str(exc)) from None

    def check(self) -> str:
        """'ok' when the file opens read-only and holds the ledger's tables; else why not."""
        try:
            with self.connect() as con:
                run(con, "SELECT count(*) FROM month_completions")
        except (DatabaseUnavailable, duckdb.Error) as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"


# Values ---------------------------------------------------------------------------------------


def money(v: Decimal | None) -> str | None:
    return None if v is None else f"{v:.2f}"


def stamp(v: datetime | None) -> str | None:
    return None if v is None else utc_iso(v)


def _rows(con: Con, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _decision(row: dict) -> dict:
    """The published decision columns of a row, as api.models.DecisionFields."""
    out = {c: row[c] for c in DECISION_COLUMNS if c not in ("company_id", "month")}
    out["evidence"] = orjson.loads(row["evidence"])
    out["unit_price_usd"] = money(row["unit_price_usd"])
    out["plan"] = row["plan"]
    return out


# Invoices -------------------------------------------------------------------------------------

_SUMMARY = """
    SELECT i.*, a.po_number AS latest_annotated_po_number
    FROM invoices AS i
    LEFT JOIN (
        SELECT company_id, month, po_number FROM invoice_annotations
        QUALIFY row_number() OVER (PARTITION BY company_id, month ORDER BY annotated_at DESC) = 1
    ) AS a USING (company_id, month)
"""
_SUMMARY_FIELDS = (
    "company_id", "month", "plan", "billable_accounts", "charged_accounts", "currency", "taxes",
    "free_reason", "po_number", "latest_annotated_po_number",
)  # fmt: skip


def _summary(row: dict) -> dict:
    out = {f: row[f] for f in _SUMMARY_FIELDS}
    out.update(
        subtotal_usd=money(row["subtotal_usd"]),
        adjustments_usd=money(row["adjustments_usd"]),
        total_usd=money(row["total_usd"]),
        issued_at=stamp(row["issued_at"]),
    )
    return out


def month_invoices(con: Con, month: str, companies: Sequence[str] | None) -> dict:
    """The month's issued invoices (of `companies`, or all), and whether the month is complete."""
    done = run(con, "SELECT completed_at FROM month_completions WHERE month = ?", [month])
    where, params = "WHERE i.month = ?", list[Any]([month])
    if companies is not None:
        where += " AND list_contains(?, i.company_id)"
        params.append(list(companies))
    rows = _rows(con, f"{_SUMMARY} {where} ORDER BY i.company_id", params)
    return {
        "month": month,
        "complete": bool(done),
        "completed_at": stamp(done[0][0]) if done else None,
        "invoices": [_summary(r) for r in rows],
    }


def _adjustment(row: dict) -> dict:
    return {
        "corrected_month": row["corrected_month"],
        "user_id": row["user_id"],
        "corrects_version": row["corrects_version"],
        "new_version": row["new_version"],
        "reason": row["reason"],
        "amount_usd": money(row["amount_usd"]),
        "created_at": stamp(row["created_at"]),
        "applied_to_invoice_month": row["applied_to_invoice_month"],
    }


def company_invoice(con: Con, company: str, month: str) -> dict:
    """One issued invoice with its lines, the adjustments it carries, later corrections of its
    month and the PO numbers added to it."""
    found = _rows(con, f"{_SUMMARY} WHERE i.company_id = ? AND i.month = ?", [company, month])
    if not found:
        raise NotFound(f"no invoice issued for company {company!r} month {month} (is the month complete?)")
    row = found[0]
    cm = [company, month]
    lines = _rows(con, "SELECT * FROM invoice_lines WHERE company_id = ? AND month = ? ORDER BY line_no", cm)
    carried = _rows(
        con,
        "SELECT * FROM invoice_adjustments WHERE company_id = ? AND applied_to_invoice_month = ? "
        "ORDER BY corrected_month, user_id, new_version",
        cm,
    )
    corrections = _rows(
        con,
        "SELECT * FROM invoice_adjustments WHERE company_id = ? AND corrected_month = ? ORDER BY user_id, new_version",
        cm,
    )
    notes = _rows(con, "SELECT * FROM invoice_annotations WHERE company_id = ? AND month = ? ORDER BY annotated_at", cm)
    return {
        **_summary(row),
        "payment_method": row["payment_method"],
        "card_brand": row["card_brand"],
        "billing_country": row["billing_country"],
        "qualifies_for_invoice_payment": row["qualifies_for_invoice_payment"],
        "notices": orjson.loads(row["notices"]),
        "matches_close": row["matches_close"],
        "lines": [
            {k: line[k] for k in ("plan", "tier", "count")}
            | {"unit_price_usd": money(line["unit_price_usd"]), "amount_usd": money(line["amount_usd"])}
            for line in lines
        ],
        "adjustments": [_adjustment(a) for a in carried],
        "corrections": [_adjustment(a) for a in corrections],
        "annotations": [
            {"po_number": n["po_number"], "annotated_at": stamp(n["annotated_at"]), "annotated_by": n["annotated_by"]}
            for n in notes
        ],
    }


# Accounts -------------------------------------------------------------------------------------


def _require_complete(con: Con, month: str) -> None:
    if not run(con, "SELECT 1 FROM month_completions WHERE month = ?", [month]):
        raise NotFound(f"month {month} is not complete: its decisions are not billed yet (see the estimate)")


# Keyset pages: the users of a page are found by a top-N over the key columns of their version-1
# rows (the sink numbers every decision from 1, so each account has exactly one: ledger/versions.py)
# -- under a billable filter, of the users whose version 1 matches it or who have a later version
# (1 % of accounts or so), a superset of the users whose latest version matches; then only the
# rows of users up to the last one found are read whole and the latest version of each kept. A
# page so reads about `limit` accounts, not the whole company (docs/performance.md).
_PAGE_USERS = """
    SELECT user_id FROM snapshot_versions
    WHERE company_id = $company AND month = $month AND user_id > $after
      AND (version = 1 AND ($billable IS NULL OR billable = $billable) OR version > 1 AND $billable IS NOT NULL)
    ORDER BY user_id
    LIMIT $chunk
"""
_USERS_VERSIONS = """
    SELECT * FROM snapshot_versions
    WHERE company_id = ? AND month = ? AND user_id > ? AND user_id <= ?
    ORDER BY user_id, version
"""
_MAX_CHUNK = 10_000  # users read per step while a filter keeps few of them


def _latest_after(
    con: Con, company: str, month: str, billable: bool | None, after: str, chunk: int
) -> tuple[list[dict], bool]:
    """The latest version of each user after `after` up to the `chunk`-th candidate, by user_id;
    and whether candidates are left after them."""
    params = {"company": company, "month": month, "after": after, "billable": billable, "chunk": chunk}
    users = con.execute(_PAGE_USERS, params).fetchall()
    if not users:
        return [], False
    latest = {r["user_id"]: r for r in _rows(con, _USERS_VERSIONS, [company, month, after, users[-1][0]])}
    return list(latest.values()), len(users) == chunk


def accounts_page(
    con: Con, company: str, month: str, billable: bool | None, after: str | None, limit: int
) -> tuple[list[dict], str | None]:
    """A page of the company-month's latest decisions by user_id after `after`; and the next `after`."""
    _require_complete(con, month)
    rows: list[dict] = []
    # limit + 1 rows tell whether a page follows; under a filter a few candidates more, for the
    # amended accounts whose latest version no longer matches
    chunk = limit + 1 if billable is None else limit + 2 + limit // 8
    position, left = after or "", True
    read = 0
    while left and len(rows) <= limit:
        latest, left = _latest_after(con, company, month, billable, position, chunk)
        rows += [r for r in latest if billable is None or r["billable"] == billable]
        read += len(latest)
        if latest:
            position = latest[-1]["user_id"]
        # A filter kept too few: read on in a step sized by the share it kept so far (x1.25).
        chunk = min(_MAX_CHUNK, max(chunk, (limit + 1 - len(rows)) * 5 * read // (4 * len(rows) + 1) + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    accounts = [
        _decision(r) | {k: r[k] for k in ("version", "corrects_version", "amend_reason", "in_report")} for r in rows
    ]
    return accounts, rows[-1]["user_id"] if more else None


def _why(v: dict) -> str:
    reason = v["amend_reason"]
    if reason is None:
        return "the month's close" if v["version"] == 1 else f"re-emitted after version {v['corrects_version']}"
    if reason == "late_event":
        return f"an event that happened in the month arrived after version {v['corrects_version']} was made"
    if reason.startswith("dispute:"):
        return f"a dispute correction, ticket {reason.split(':', 1)[1]}"
    return reason


def account_history(con: Con, company: str, month: str, user: str) -> dict:
    """Every version of one account's decision, oldest first, each with why it exists and what changed."""
    _require_complete(con, month)
    rows = _rows(
        con,
        "SELECT * FROM snapshot_versions WHERE company_id = ? AND month = ? AND user_id = ? ORDER BY version",
        [company, month, user],
    )
    if not rows:
        raise NotFound(f"no decision for user {user!r} of company {company!r} in {month}")
    reasons = [r["amend_reason"] or "" for r in rows]
    tickets = sorted({a.removeprefix("dispute:") for a in reasons if a.startswith("dispute:")})
    disputes = {
        d["ticket"]: {k: d[k] for k in ("ticket", "requested_by", "applied_at")}
        for d in (_rows(con, "SELECT * FROM disputes WHERE list_contains(?, ticket)", [tickets]) if tickets else [])
    }
    adjustments = {
        a["new_version"]: _adjustment(a)
        for a in _rows(
            con,
            "SELECT * FROM invoice_adjustments WHERE company_id = ? AND corrected_month = ? AND user_id = ?",
            [company, month, user],
        )
    }
    versions, previous = [], None
    for r in rows:
        reason = r["amend_reason"] or ""
        versions.append(
            _decision(r)
            | {k: r[k] for k in ("version", "corrects_version", "amend_reason", "in_report")}
            | {
                "why": _why(r),
                "changed": [c for c in DECISION_COLUMNS if previous is not None and previous[c] != r[c]],
                "received_at": stamp(r["received_at"]),
                "dispute": disputes.get(reason.split(":", 1)[1]) if reason.startswith("dispute:") else None,
                "adjustment": adjustments.get(r["version"]),
            }
        )
        previous = r
    return {"company_id": company, "month": month, "user_id": user, "current": versions[-1], "versions": versions}


# Estimates (provisional) --------------------------------------------------------------------------


def _estimated_invoice(invoice: dict) -> dict:
    keep = ("plan", "billable_accounts", "charged_accounts", "free_reason", "po_number", "payment_method",
            "card_brand", "billing_country", "qualifies_for_invoice_payment", "notices")  # fmt: skip
    return {k: invoice.get(k) for k in keep} | {
        "lines": [
            {k: line[k] for k in ("plan", "tier", "count", "unit_price_usd", "amount_usd")} for line in invoice["lines"]
        ],
        "subtotal_usd": invoice["subtotal_usd"],
        "currency": invoice.get("currency", CURRENCY),
        "taxes": invoice.get("taxes", TAXES),
        "notices": invoice.get("notices") or [],
    }


def estimate(
    con: Con, company: str, month: str, status: str | None, after: str | None, limit: int
) -> tuple[dict, str | None]:
    """The latest estimate of a company-month with a page of its accounts (by user_id, of `status`);
    and the next `after`."""
    try:
        found = _rows(con, "SELECT * FROM estimate_invoices WHERE company_id = ? AND month = ?", [company, month])
    except duckdb.CatalogException:  # a ledger written by a sink that predates estimates
        found = []
    if not found:
        raise NotFound(f"no estimate for company {company!r} month {month} (run `seatledger estimate --month {month}`)")
    head = found[0]
    rows = _rows(
        con,
        """
        SELECT * FROM estimates
        WHERE company_id = ? AND month = ? AND estimate_id = ? AND user_id > ? AND (? IS NULL OR status = ?)
        ORDER BY user_id
        LIMIT ?
        """,
        [company, month, head["estimate_id"], after or "", status, status, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    body = {
        "provisional": True,
        "company_id": company,
        "month": month,
        "estimate_id": head["estimate_id"],
        "as_of": stamp(head["as_of"]),
        "counts": {k: head[k] for k in ("on_track", "at_risk", "not_billed")},
        "estimate": _estimated_invoice(orjson.loads(head["invoice"])),
        "accounts": [_decision(r) | {"status": r["status"], "status_reason": r["status_reason"]} for r in rows],
    }
    return body, rows[-1]["user_id"] if more else None
