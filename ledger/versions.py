"""The sink is the single writer of versions: of each decision and of each company's month.

A decision whose digest equals the latest stored version's digest for (company, user, month) is a
redelivery and is skipped; otherwise it is stored as latest + 1 (1 when none) with
`corrects_version` = the previous latest. The emitter's own version number and amend reason are
kept beside it. `company_month` likewise, per (company, month), by its content.

R11: a decision stored for a company-month that is already invoiced also becomes an
`invoice_adjustments` row (new charged price - old charged price), carried by the company's next
invoice (ledger.invoicing).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from itertools import chain, groupby, repeat
from typing import NamedTuple

import duckdb
import orjson
import pyarrow as pa

from ledger.batch import Batch, BatchResult, Rows
from ledger.connection import run
from ledger.records import (
    CompanyMonthRecord,
    DecisionColumns,
    Item,
    block_columns,
    decision_columns,
    int_or_none,
    message,
    plain_decision,
    provenance,
    version_type,
)
from ledger.tables import arrow_view, key_table
from projections.decide import DECISION_COLUMNS, Decision
from projections.money import ZERO
from projections.snapshots import DecisionEncoder

log = logging.getLogger("seatledger.sink")


def charged_usd(charged: bool, unit_price_usd: Decimal) -> Decimal:
    """What a decision puts on the invoice."""
    return unit_price_usd if charged else ZERO


class Head(NamedTuple):
    """The latest stored version of a decision (a tuple: one is built per stored decision)."""

    version: int
    digest: str
    amount_usd: Decimal  # what it charged


DecisionKey = tuple[str, str, str]  # company_id, user_id, month


# The latest stored version of each key of the view `{keys}` (company_id, user_id, month).
_HEADS_SQL = """
    SELECT s.company_id, s.user_id, s.month, s.version, s.digest, s.charged, s.unit_price_usd
    FROM snapshot_versions AS s
    JOIN {keys} AS k USING (company_id, user_id, month)
    QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id, s.month ORDER BY s.version DESC) = 1
"""


def _heads(con: duckdb.DuckDBPyConnection, keys: list[DecisionKey]) -> dict[DecisionKey, Head]:
    with key_table(con, "_sink_keys", keys, ["company_id", "user_id", "month"]):
        rows = run(con, _HEADS_SQL.format(keys="_sink_keys"))
    return {(c, u, m): Head(int(v), dg, charged_usd(bool(ch), Decimal(p))) for c, u, m, v, dg, ch, p in rows}


def amended(con: duckdb.DuckDBPyConnection, months_sql: str, params: list | None = None) -> bool:
    """Whether any stored decision of the months `months_sql` selects has a version above 1.

    The sink numbers each key's versions 1, 2, ... (it is the single writer), so until then every
    key has exactly one row: its latest version is its row and its rows count its keys, without
    the window or DISTINCT over the month (a close's month, 1M rows, at its completing batch). A
    cheap check: row groups whose versions are all 1 are skipped by their min/max."""
    sql = f"SELECT count(*) FROM snapshot_versions WHERE version > 1 AND month IN ({months_sql})"
    return bool(con.execute(sql, params or []).fetchall()[0][0])


def _invoiced(con: duckdb.DuckDBPyConnection, keys: list[DecisionKey]) -> set[tuple[str, str]]:
    """The (company, month)s among `keys` whose invoice is already issued."""
    cms = sorted({(c, m) for c, _, m in keys})
    with key_table(con, "_sink_cms", cms, ["company_id", "month"]):
        rows = con.execute(
            "SELECT i.company_id, i.month FROM invoices AS i JOIN _sink_cms USING (company_id, month)"
        ).fetchall()
    return {(c, m) for c, m in rows}


def _warn_digest(it: Item, d: Decision) -> None:
    log.warning(
        "decision digest does not match its values",
        extra={
            "company_id": d.company_id,
            "user_id": d.user_id,
            "month": d.month,
            "kafka_partition": it.kafka_partition,
            "kafka_offset": it.kafka_offset,
        },
    )


VERSION_COLUMNS = (
    *DECISION_COLUMNS, "plan", "version", "corrects_version", "amend_reason", "emitted_version", "in_report",
    "digest", "close_id", "partition", "emitted_at", "received_at", "batch_id", "kafka_partition", "kafka_offset",
)  # fmt: skip


def _version_row(it: Item, d: Decision, version: int, corrects: int | None, batch: Batch) -> tuple:
    """The snapshot_versions row of a stored decision, its values in VERSION_COLUMNS order."""
    msg = message(it)
    return (
        d.company_id, d.user_id, d.month, d.billable, d.charged, d.tier, d.rule, d.reason, d.evidence,
        d.unit_price_usd, d.ruleset_version, d.plan, version, corrects, msg.get("amend_reason"),
        int_or_none(msg.get("version")), msg.get("in_report"), msg["digest"], msg.get("close_id"),
        int_or_none(msg.get("partition")), msg.get("emitted_at"), batch.now, batch.batch_id,
        it.kafka_partition, it.kafka_offset,
    )  # fmt: skip


def _adjustment_row(it: Item, d: Decision, head: Head | None, version: int, batch: Batch) -> dict:
    return {
        "company_id": d.company_id,
        "corrected_month": d.month,
        "user_id": d.user_id,
        "corrects_version": None if head is None else head.version,
        "new_version": version,
        "reason": message(it).get("amend_reason") or ("new_account" if head is None else "restated"),
        "amount_usd": charged_usd(d.charged, d.unit_price_usd) - (head.amount_usd if head is not None else ZERO),
        "created_at": batch.now,
        "applied_to_invoice_month": None,
        "applied_at": None,
    }


def store_decisions(
    con: duckdb.DuckDBPyConnection,
    decisions: list[tuple[Item, Decision, bool]],
    batch: Batch,
    res: BatchResult,
    rows: Rows,
) -> None:
    """Version each (item, decision, digest matches) in arrival order into `rows`."""
    if not decisions:
        return
    keys = sorted({(d.company_id, d.user_id, d.month) for _, d, _ in decisions})
    heads, invoiced = _heads(con, keys), _invoiced(con, keys)
    for it, d, digest_ok in decisions:
        if not digest_ok:
            res.digest_mismatches += 1
            _warn_digest(it, d)
        key = (d.company_id, d.user_id, d.month)
        head = heads.get(key)
        digest = message(it)["digest"]
        if head is not None and head.digest == digest:
            res.duplicates["decision"] += 1
            continue
        version = 1 if head is None else head.version + 1
        rows.versions.append(_version_row(it, d, version, None if head is None else head.version, batch))
        if (d.company_id, d.month) in invoiced:
            rows["invoice_adjustments"].append(_adjustment_row(it, d, head, version, batch))
        heads[key] = Head(version, digest, charged_usd(d.charged, d.unit_price_usd))


_MESSAGE_FIELDS = ("amend_reason", "version", "in_report", "close_id", "partition", "emitted_at")
# the stored columns of a message (snapshot_versions' but the versions the sink assigns and the
# batch's own), with the emitter's "version" stored as emitted_version
_PART_COLUMNS = (
    *DECISION_COLUMNS, "plan", "digest", "amend_reason", "emitted_version", "in_report", "close_id", "partition",
    "emitted_at", "kafka_partition", "kafka_offset",
)  # fmt: skip


def store_plain_decisions(
    con: duckdb.DuckDBPyConnection, items: list[Item], batch: Batch, res: BatchResult, rows: Rows
) -> bool:
    """`store_decisions` of a batch's decisions by column, for the common case of a close: every
    message plain (`Item.plain`) or a decision_block, its checks and digest passing
    (`ledger.records.decision_columns`, `block_columns`), each key once in the batch and no month
    invoiced (no adjustment). Then no Decision or row is built per message: the columns are Arrow
    arrays from the start, and DuckDB checks the keys and finds the heads over them. False, with
    nothing done, otherwise: the caller takes the per-message path (`expanded`, `decision_of` +
    `store_decisions`), which names every problem; both store the same rows
    (tests/unit/ledger/test_columnar_decisions.py)."""
    parts = _column_parts(items, DecisionEncoder()) if items else None
    if parts is None:
        return False
    table = pa.concat_tables(parts)
    with arrow_view(con, "_sink_new", table.select(["company_id", "user_id", "month", "digest"])):
        if _repeated_or_invoiced(con):
            return False
        heads = run(con, _HEADS_SQL.format(keys="_sink_new"))
    if heads:
        table = _new_versions(table, heads, res)
    else:  # the common case of a first close: every decision is version 1
        table = table.append_column("version", pa.repeat(pa.scalar(1, pa.int32()), len(table)))
        table = table.append_column("corrects_version", pa.nulls(len(table), pa.int32()))
    rows.version_columns = dict(zip(table.column_names, table.columns, strict=True))
    rows.version_constants = {"received_at": batch.now, "batch_id": batch.batch_id}
    return True


def _repeated_or_invoiced(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a key of `_sink_new` is there twice, or one of its months is invoiced already."""
    (repeated, invoiced), = run(
        con,
        """
        SELECT
            (SELECT count(*) FROM (SELECT 1 FROM _sink_new GROUP BY company_id, user_id, month HAVING count(*) > 1)),
            (SELECT count(*) FROM invoices AS i WHERE EXISTS (
                SELECT 1 FROM _sink_new AS n WHERE n.company_id = i.company_id AND n.month = i.month))
        """,
    )  # fmt: skip
    return bool(repeated or invoiced)


def _column_parts(items: list[Item], encoder: DecisionEncoder) -> list[pa.Table] | None:
    """The stored columns (`_PART_COLUMNS`) of each run of plain decision messages and of each
    run of decision_blocks, in item order; None when one of them is not the common case."""
    parts: list[pa.Table] = []
    for is_message, group in groupby(items, lambda it: message(it)["kind"] == "decision"):
        run_ = list(group)
        part = _messages_part(run_, encoder) if is_message else _blocks_part(run_, encoder)
        if part is None:
            return None
        parts.append(part)
    return parts


def _part(cols: DecisionColumns, values: dict[str, list | pa.Array]) -> pa.Table:
    """A part's table: the decision columns and the message's (lists or arrays), in `_PART_COLUMNS`."""
    arrays = cols._asdict() | {
        name: v if isinstance(v, pa.Array) else pa.array(v, version_type(name)) for name, v in values.items()
    }
    return pa.table({name: arrays[name] for name in _PART_COLUMNS})


def _messages_part(items: list[Item], encoder: DecisionEncoder) -> pa.Table | None:
    msgs = [message(it) for it in items]
    # not plain: a month seen first in this batch (plain_decision knows it now), or a problem
    if not all(it.plain or plain_decision(m) for it, m in zip(items, msgs, strict=True)):
        return None
    cols = decision_columns(msgs, encoder)
    if cols is None:
        return None
    fields = {name: list(map(dict.get, msgs, repeat(name))) for name in _MESSAGE_FIELDS}
    fields["emitted_version"] = fields.pop("version")
    return _part(
        cols,
        {
            **fields,
            "kafka_partition": [it.kafka_partition for it in items],
            "kafka_offset": [it.kafka_offset for it in items],
        },
    )


def _blocks_part(items: list[Item], encoder: DecisionEncoder) -> pa.Table | None:
    blocks = [message(it) for it in items]
    cols = block_columns(blocks, encoder)
    if cols is None:
        return None

    def per_block(name: str, values: list) -> pa.Array:  # a value per block, spread to its rows
        return pa.array(values, version_type(name)).take(cols.block)

    n = len(cols.block)
    return _part(
        cols.columns,
        {
            "amend_reason": pa.nulls(n, pa.string()), "emitted_version": pa.repeat(pa.scalar(1, pa.int32()), n),
            "in_report": list(chain.from_iterable(b["in_report"] for b in blocks)),
            **{name: per_block(name, [b.get(name) for b in blocks]) for name in ("close_id", "partition", "emitted_at")},
            "kafka_partition": per_block("kafka_partition", [it.kafka_partition for it in items]),
            "kafka_offset": per_block("kafka_offset", [it.kafka_offset for it in items]),
        },
    )  # fmt: skip


def _new_versions(table: pa.Table, heads: list[tuple], res: BatchResult) -> pa.Table:
    """The rows of `table` to store, with their versions and the versions they correct: a message
    whose digest is its key's latest (`heads`: `_HEADS_SQL` rows) is a redelivery (keys are
    distinct in the batch)."""
    latest = {(c, u, m): (int(v), dg) for c, u, m, v, dg, *_ in heads}
    keep, versions, corrects = [], [], []
    keys = zip(*(table.column(c).to_pylist() for c in ("company_id", "user_id", "month", "digest")), strict=True)
    for i, (c, u, m, dg) in enumerate(keys):
        head = latest.get((c, u, m))
        if head is None or head[1] != dg:
            keep.append(i)
            versions.append(1 if head is None else head[0] + 1)
            corrects.append(None if head is None else head[0])
    if len(keep) < len(table):
        res.duplicates["decision"] += len(table) - len(keep)
    table = table.take(pa.array(keep, pa.int64()))
    table = table.append_column("version", pa.array(versions, pa.int32()))
    return table.append_column("corrects_version", pa.array(corrects, pa.int32()))


def _company_month_heads(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """(company, month) -> (latest stored version, its content digest)."""
    with key_table(con, "_sink_cms", keys, ["company_id", "month"]):
        rows = con.execute(
            """
            SELECT v.company_id, v.month, v.version, v.content_digest
            FROM company_month_versions AS v JOIN _sink_cms USING (company_id, month)
            QUALIFY row_number() OVER (PARTITION BY v.company_id, v.month ORDER BY v.version DESC) = 1
            """
        ).fetchall()
    return {(c, m): (int(v), dg) for c, m, v, dg in rows}


def store_company_months(
    con: duckdb.DuckDBPyConnection,
    company_months: list[tuple[Item, CompanyMonthRecord]],
    batch: Batch,
    res: BatchResult,
    rows: Rows,
) -> None:
    """Version each company_month (and its MAU series) in arrival order into `rows`."""
    if not company_months:
        return
    heads = _company_month_heads(con, sorted({(cm.company_id, cm.month) for _, cm in company_months}))
    for it, cm in company_months:
        msg = message(it)
        head = heads.get((cm.company_id, cm.month))
        if head is not None and head[1] == cm.content_digest:
            res.duplicates["company_month"] += 1
            continue
        version = 1 if head is None else head[0] + 1
        rows["company_month_versions"].append(
            {
                "company_id": cm.company_id,
                "month": cm.month,
                "version": version,
                "corrects_version": None if head is None else head[0],
                "emitted_version": int_or_none(msg.get("version")),
                "content_digest": cm.content_digest,
                "invoice": orjson.dumps(cm.invoice).decode(),
                "mau": orjson.dumps(cm.mau_json).decode(),
                "close_id": msg.get("close_id"),
                "partition": int_or_none(msg.get("partition")),
                "emitted_at": msg.get("emitted_at"),
                **provenance(it, batch),
            }
        )
        rows["company_month_mau"].extend(
            {"company_id": cm.company_id, "month": cm.month, "version": version, "day": d, "mau": n} for d, n in cm.mau
        )
        heads[(cm.company_id, cm.month)] = (version, cm.content_digest)
