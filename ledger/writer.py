"""The sink's writer: one batch of snapshot-topic records, one DuckDB transaction.

Everything here is testable without Kafka: `write_batch(con, items, topic=...)` stores one batch of
records (already parsed into `Item`s by ledger.records.parse_record) in ONE transaction, together
with the Kafka position they came from. `streams/sink_consumer.py` is the Kafka loop around it;
docs/duckdb.md explains the tables for analysts.

- Positions: `sink_offsets` holds, per topic partition, the first offset not yet written; it is
  updated in the transaction that wrote the rows. Records below the stored position are dropped
  inside the transaction, so even a second sink racing the first cannot store anything twice.
- Versions (ledger.versions), month completion (ledger.completion) and invoices
  (ledger.invoicing) are all decided inside that transaction, so a reader between batches never
  sees half a batch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from ledger.batch import Batch, BatchResult, Rows
from ledger.completion import complete_months
from ledger.connection import run
from ledger.estimates import ESTIMATE_KINDS, store_estimates
from ledger.invoicing import issue_invoices
from ledger.records import (
    CompanyMonthRecord,
    Item,
    company_month_of,
    decision_of,
    dispute_row,
    expanded,
    message,
    partition_report_row,
    reject_row,
)
from ledger.tables import insert_columns, insert_rows, insert_tuples, key_table
from ledger.versions import VERSION_COLUMNS, store_company_months, store_decisions, store_plain_decisions
from projections.decide import Decision
from projections.snapshots import DecisionEncoder

# The tables a batch's messages become, in insertion order (invoices come after completion).
_MESSAGE_TABLES = (
    "snapshot_versions",
    "company_month_versions",
    "company_month_mau",
    "partition_reports",
    "disputes",
    "invoice_adjustments",
    "sink_rejects",
)


def read_positions(con: duckdb.DuckDBPyConnection, topic: str) -> dict[int, int]:
    rows = run(con, "SELECT partition, next_offset FROM sink_offsets WHERE topic = ?", [topic])
    return {int(p): int(o) for p, o in rows}


def write_batch(
    con: duckdb.DuckDBPyConnection,
    items: list[Item],
    *,
    topic: str,
    now: datetime | None = None,
    columnar: bool = True,
) -> BatchResult:
    """Store `items` (in consumption order) and their Kafka positions in one transaction.

    `columnar=False` reads every decision message on its own: the reference the columnar path of
    a close's decisions is held to (tests/unit/ledger/test_columnar_decisions.py)."""
    res = BatchResult(messages=sum(it.count for it in items))
    run(con, "BEGIN TRANSACTION")
    try:
        _write(con, items, topic, now or datetime.now(UTC), res, columnar)
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise
    return res


def _write(
    con: duckdb.DuckDBPyConnection, items: list[Item], topic: str, now: datetime, res: BatchResult, columnar: bool
) -> None:
    stored_pos = read_positions(con, topic)
    fresh = [it for it in items if it.kafka_offset >= stored_pos.get(it.kafka_partition, 0)]
    res.already_written = res.messages - sum(it.count for it in fresh)
    batch = Batch(topic, now, int(run(con, "SELECT coalesce(max(batch_id), 0) + 1 FROM sink_batches")[0][0]))
    res.batch_id = batch.batch_id

    rows = Rows()
    _messages_to_rows(con, fresh, batch, res, rows, columnar)
    for table in _MESSAGE_TABLES:
        n = insert_rows(con, table, rows[table])
        if table == "snapshot_versions":
            n += insert_tuples(con, table, VERSION_COLUMNS, rows.versions)
            n += insert_columns(con, table, rows.version_columns, rows.version_constants)
        if n:
            res.stored[table] += n
    res.months_completed = complete_months(con, batch)
    issue_invoices(con, batch, res)
    res.positions = _advance_positions(con, items, stored_pos, batch)
    batch_row = {
        "batch_id": batch.batch_id,
        "written_at": now,
        "messages": res.messages,
        "rows_written": res.rows_written,
        "duplicates_skipped": sum(res.duplicates.values()),
    }
    insert_rows(con, "sink_batches", [batch_row])


def _messages_to_rows(
    con: duckdb.DuckDBPyConnection, fresh: list[Item], batch: Batch, res: BatchResult, rows: Rows, columnar: bool
) -> None:
    """Every kind's rows, and a `sink_rejects` row for each message that could not be read.

    A close's decisions take the columnar path when they are all of the common case; otherwise
    each is read on its own (`decision_of`; a decision_block as the messages it stands for), with
    the same outcome."""
    decision_items = [it for it in fresh if it.msg is not None and it.msg["kind"] in _DECISION_KINDS]
    columnar = columnar and store_plain_decisions(con, decision_items, batch, res, rows)
    if not columnar:
        fresh = expanded(fresh)
    decisions: list[tuple[Item, Decision, bool]] = []
    encoder = DecisionEncoder()  # the batch's digests, from pieces shared by equal verdicts
    by_kind: dict[str, list[Item]] = {"company_month": [], "partition_done": [], "dispute_applied": [], "estimates": []}
    for it in fresh:
        if it.msg is None:
            rows["sink_rejects"].append(reject_row(it, it.error or "unreadable", batch))
        elif it.msg["kind"] in _DECISION_KINDS:
            if columnar:
                continue
            try:
                decisions.append((it, *decision_of(it.msg, encoder)))
            except Exception as exc:
                rows["sink_rejects"].append(reject_row(it, f"bad decision: {exc}", batch))
        elif it.msg["kind"] in ESTIMATE_KINDS:
            by_kind["estimates"].append(it)
        else:
            by_kind[it.msg["kind"]].append(it)
    store_decisions(con, decisions, batch, res, rows)
    store_company_months(con, _company_months(by_kind["company_month"], batch, rows), batch, res, rows)
    _partition_reports(by_kind["partition_done"], batch, rows)
    _disputes(con, by_kind["dispute_applied"], batch, res, rows)
    store_estimates(con, by_kind["estimates"], batch, res, rows)  # provisional: their own tables
    res.rejects = len(rows["sink_rejects"])
    res.adjustments_created = len(rows["invoice_adjustments"])


_DECISION_KINDS = ("decision", "decision_block")


def _company_months(items: list[Item], batch: Batch, rows: Rows) -> list[tuple[Item, CompanyMonthRecord]]:
    out = []
    for it in items:
        try:
            out.append((it, company_month_of(message(it))))
        except Exception as exc:
            rows["sink_rejects"].append(reject_row(it, f"bad company_month: {exc}", batch))
    return out


def _partition_reports(items: list[Item], batch: Batch, rows: Rows) -> None:
    for it in items:
        try:
            rows["partition_reports"].append(partition_report_row(it, batch))
        except Exception as exc:
            rows["sink_rejects"].append(reject_row(it, f"bad partition_done: {exc}", batch))


def _disputes(con: duckdb.DuckDBPyConnection, items: list[Item], batch: Batch, res: BatchResult, rows: Rows) -> None:
    """One `disputes` row per ticket ever: a redelivery or a second message for it is skipped."""
    if not items:
        return
    tickets = sorted({str(message(it).get("ticket")) for it in items})
    with key_table(con, "_sink_tickets", [(t,) for t in tickets], ["ticket"]):
        seen = {t for (t,) in run(con, "SELECT ticket FROM disputes JOIN _sink_tickets USING (ticket)")}
    for it in items:
        try:
            row = dispute_row(it, batch)
        except Exception as exc:
            rows["sink_rejects"].append(reject_row(it, f"bad dispute_applied: {exc}", batch))
            continue
        if row["ticket"] in seen:
            res.duplicates["dispute_applied"] += 1
            continue
        seen.add(row["ticket"])
        rows["disputes"].append(row)


def _advance_positions(
    con: duckdb.DuckDBPyConnection, items: list[Item], stored: dict[int, int], batch: Batch
) -> dict[int, int]:
    """The first offset after every record of this batch, per partition, stored in sink_offsets."""
    positions = dict(stored)
    for it in items:
        if it.kafka_offset + 1 > positions.get(it.kafka_partition, 0):
            positions[it.kafka_partition] = it.kafka_offset + 1
    changed = [
        {"topic": batch.topic, "partition": p, "next_offset": o, "updated_at": batch.now}
        for p, o in positions.items()
        if stored.get(p) != o
    ]
    insert_rows(con, "sink_offsets", changed, or_replace=True)
    return positions
