"""R11: invoices issued by the ledger, never edited, and the PO numbers added to them later.

When a month completes, an invoice per company is issued (inserted, never updated) with
projections.invoice.issue_from_close: its lines are counted from the stored decisions at that
moment (the latest version of each account), the company's profile (PO number, payment method,
notices, free reason) comes from the latest `company_month`. Pending `invoice_adjustments` of
earlier months are carried by it and marked applied in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import groupby
from pathlib import Path

import duckdb
import orjson

from ledger.batch import Batch, BatchResult
from ledger.connection import run, write_connection
from ledger.tables import ensure_schema, insert_rows, key_table
from ledger.versions import amended
from projections.invoice import CURRENCY, TAXES, AdjustmentLine, IssuedInvoice, invoice_lines, issue_from_close

Due = tuple[str, int, dict]  # company_id, company_month version, the close's invoice JSON


def _due(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, list[Due]]]:
    """(month, its due invoices) for every complete month with a company_month and no invoice yet."""
    rows = run(
        con,
        """
        SELECT v.company_id, v.month, v.version, v.invoice
        FROM company_month_versions AS v
        WHERE v.month IN (SELECT month FROM month_completions)
          AND NOT EXISTS (SELECT 1 FROM invoices AS i WHERE i.company_id = v.company_id AND i.month = v.month)
        QUALIFY row_number() OVER (PARTITION BY v.company_id, v.month ORDER BY v.version DESC) = 1
        ORDER BY v.month, v.company_id
        """,
    )
    for month, group in groupby(rows, key=lambda r: r[1]):
        yield month, [(c, int(v), orjson.loads(inv)) for c, _, v, inv in group]


@dataclass
class _Stored:
    """The month's latest stored decisions of the due companies, counted as invoices need them."""

    charged: dict[str, Counter[tuple[str, str, Decimal]]] = field(default_factory=dict)  # (plan, tier, price) -> n
    billable: Counter[str] = field(default_factory=Counter)  # accounts per company
    charged_accounts: Counter[str] = field(default_factory=Counter)


_LATEST = "QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id ORDER BY s.version DESC) = 1"


def _stored_decisions(con: duckdb.DuckDBPyConnection, month: str) -> _Stored:
    out = _Stored()
    # no amendment in the month: every row is its key's latest (ledger.versions.amended)
    latest = _LATEST if amended(con, "?", [month]) else ""
    for c, plan, tier, price, charged, billable, n in run(
        con,
        f"""
        SELECT company_id, plan, tier, unit_price_usd, charged, billable, count(*)
        FROM (SELECT s.* FROM snapshot_versions AS s JOIN _sink_due USING (company_id) WHERE s.month = ? {latest})
        GROUP BY ALL
        """,
        [month],
    ):
        out.billable[c] += n if billable else 0
        if charged:
            out.charged_accounts[c] += n
            out.charged.setdefault(c, Counter())[(plan, tier, Decimal(price))] += n
    return out


def _take_adjustments(con: duckdb.DuckDBPyConnection, month: str, now: datetime) -> dict[str, list[AdjustmentLine]]:
    """The due companies' pending adjustments of months before `month`, now marked applied to it."""
    pending: dict[str, list[AdjustmentLine]] = {}
    for c, corrected, user, corrects, new, reason, amount in run(
        con,
        """
        SELECT a.company_id, a.corrected_month, a.user_id, a.corrects_version, a.new_version, a.reason, a.amount_usd
        FROM invoice_adjustments AS a JOIN _sink_due USING (company_id)
        WHERE a.applied_to_invoice_month IS NULL AND a.corrected_month < ?
        """,
        [month],
    ):
        pending.setdefault(c, []).append(AdjustmentLine(corrected, user, corrects, new, reason, amount))
    run(
        con,
        """
        UPDATE invoice_adjustments SET applied_to_invoice_month = ?, applied_at = ?
        WHERE applied_to_invoice_month IS NULL AND corrected_month < ?
          AND company_id IN (SELECT company_id FROM _sink_due)
        """,
        [month, now, month],
    )
    return pending


def _invoice_row(issued: IssuedInvoice, company_month_version: int, batch: Batch) -> dict:
    inv = issued.invoice
    return {
        "company_id": inv.company_id,
        "month": inv.month,
        "plan": inv.plan,
        "billable_accounts": inv.billable_accounts,
        "charged_accounts": inv.charged_accounts,
        "subtotal_usd": inv.subtotal_usd,
        "adjustments_usd": inv.adjustments_usd,
        "total_usd": inv.total_usd,
        "currency": CURRENCY,
        "taxes": TAXES,
        "po_number": inv.po_number,
        "payment_method": inv.payment_method,
        "card_brand": inv.card_brand,
        "billing_country": inv.billing_country,
        "qualifies_for_invoice_payment": inv.qualifies_for_invoice_payment,
        "free_reason": inv.free_reason,
        "notices": orjson.dumps(inv.notices).decode(),
        "company_month_version": company_month_version,
        "close_subtotal_usd": issued.close_subtotal_usd,
        "matches_close": issued.matches_close,
        "issued_at": batch.now,
        "batch_id": batch.batch_id,
    }


def _line_rows(issued: IssuedInvoice) -> list[dict]:
    inv = issued.invoice
    return [
        {
            "company_id": inv.company_id,
            "month": inv.month,
            "line_no": i,
            "plan": line.plan,
            "tier": line.tier,
            "count": line.count,
            "unit_price_usd": line.unit_price_usd,
            "amount_usd": line.amount_usd,
        }
        for i, line in enumerate(inv.lines, 1)
    ]


def _issue_month(con: duckdb.DuckDBPyConnection, month: str, due: list[Due], batch: Batch, res: BatchResult) -> None:
    with key_table(con, "_sink_due", [(c,) for c, _, _ in due], ["company_id"]):
        stored = _stored_decisions(con, month)
        adjustments = _take_adjustments(con, month, batch.now)
    res.adjustments_applied += sum(len(a) for a in adjustments.values())
    invoices, lines = [], []
    for c, version, close in due:
        issued = issue_from_close(
            close,
            c,
            month,
            invoice_lines(stored.charged.get(c, {})),
            billable=stored.billable[c],
            charged=stored.charged_accounts[c],
            adjustments=adjustments.get(c, []),
        )
        invoices.append(_invoice_row(issued, version, batch))
        lines.extend(_line_rows(issued))
    res.stored["invoices"] += insert_rows(con, "invoices", invoices)
    if lines:
        res.stored["invoice_lines"] += insert_rows(con, "invoice_lines", lines)
    res.invoices_issued += len(invoices)


def issue_invoices(con: duckdb.DuckDBPyConnection, batch: Batch, res: BatchResult) -> None:
    """Issue every due invoice: complete month, company_month stored, no invoice yet."""
    for month, due in _due(con):
        _issue_month(con, month, due, batch, res)


# R11's exception: a PO number added to an issued invoice ------------------------------------


class InvoiceNotIssued(LookupError):
    pass


def annotate_invoice(
    path: Path | str,
    company_id: str,
    month: str,
    po_number: str,
    *,
    annotated_by: str | None = None,
    timeout: float = 30.0,
    now: datetime | None = None,
) -> datetime:
    """Record a PO number on an issued invoice (changes no amount). Opens the file directly,
    waiting while the sink writes a batch. Returns the annotation's time."""
    now = now or datetime.now(UTC)
    with write_connection(path, timeout=timeout) as con:
        ensure_schema(con)
        run(con, "BEGIN TRANSACTION")
        found = run(con, "SELECT count(*) FROM invoices WHERE company_id = ? AND month = ?", [company_id, month])[0][0]
        if not found:
            run(con, "ROLLBACK")
            raise InvoiceNotIssued(f"no invoice issued for company {company_id} month {month}")
        row = {
            "company_id": company_id,
            "month": month,
            "po_number": po_number,
            "annotated_at": now,
            "annotated_by": annotated_by,
        }
        insert_rows(con, "invoice_annotations", [row])
        run(con, "COMMIT")
    return now
