"""The sink's side of the bill so far: estimate messages into their own tables, never billed data.

`estimates` keeps one row per account of a run (ledger/sql/estimates.sql); `estimate_invoices` the
latest run's estimated invoice per company-month. A company's `estimate` messages reach the sink
before its `company_estimate` (one key, one partition), so once the company row of a run is stored
every account row of it is too; readers take the run the company row names. Storing a newer
run's company row deletes the account rows of older runs. Redeliveries are harmless: account rows
are keyed by run and user, and a company row older than the stored one is ignored.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ledger.batch import Batch, BatchResult, Rows
from ledger.connection import run
from ledger.records import Item, estimate_invoice_row, estimate_row, reject_row
from ledger.tables import insert_rows

ESTIMATE_KINDS = ("estimate", "company_estimate")


def store_estimates(
    con: duckdb.DuckDBPyConnection, items: list[Item], batch: Batch, res: BatchResult, rows: Rows
) -> None:
    """Store a batch's estimate messages (in consumption order); unreadable ones become rejects."""
    accounts: dict[tuple, dict] = {}
    companies: dict[tuple[str, str], dict] = {}
    for it in items:
        kind = it.msg["kind"] if it.msg else "?"
        try:
            if kind == "estimate":
                row = estimate_row(it, batch)
                accounts[(row["company_id"], row["month"], row["estimate_id"], row["user_id"])] = row
            else:
                row = estimate_invoice_row(it, batch)
                key = (row["company_id"], row["month"])
                if key not in companies or row["as_of"] >= companies[key]["as_of"]:
                    companies[key] = row
        except Exception as exc:
            rows["sink_rejects"].append(reject_row(it, f"bad {kind}: {exc}", batch))
    if accounts:
        res.stored["estimates"] += insert_rows(con, "estimates", list(accounts.values()), or_replace=True)
    newer = _newer_than_stored(con, list(companies.values()))
    if newer:
        res.stored["estimate_invoices"] += insert_rows(con, "estimate_invoices", newer, or_replace=True)
        _drop_superseded(con, newer)


def _runs(rows: list[dict]) -> pa.Table:
    return pa.table(
        {
            "company_id": pa.array([r["company_id"] for r in rows], pa.string()),
            "month": pa.array([r["month"] for r in rows], pa.string()),
            "as_of": pa.array([r["as_of"] for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )


def _newer_than_stored(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> list[dict]:
    """The company rows whose run is at least as recent as the stored one (or with none stored)."""
    if not rows:
        return []
    con.register("_sink_runs", _runs(rows))
    try:
        older = run(
            con,
            """
            SELECT r.company_id, r.month FROM _sink_runs AS r
            JOIN estimate_invoices AS e USING (company_id, month)
            WHERE r.as_of < e.as_of
            """,
        )
    finally:
        con.unregister("_sink_runs")
    stale = {(c, m) for c, m in older}
    return [r for r in rows if (r["company_id"], r["month"]) not in stale]


def _drop_superseded(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Delete the account rows of runs older than the ones just stored."""
    con.register("_sink_runs", _runs(rows))
    try:
        run(
            con,
            """
            DELETE FROM estimates AS e USING _sink_runs AS r
            WHERE e.company_id = r.company_id AND e.month = r.month AND e.as_of < r.as_of
            """,
        )
    finally:
        con.unregister("_sink_runs")
