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
from itertools import repeat
from typing import NamedTuple

import duckdb
import orjson

from ledger.batch import Batch, BatchResult, Rows
from ledger.records import (
    CompanyMonthRecord,
    Item,
    block_columns,
    decision_columns,
    int_or_none,
    message,
    plain_decision,
    provenance,
)
from ledger.tables import key_table
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


def _heads(con: duckdb.DuckDBPyConnection, keys: list[DecisionKey]) -> dict[DecisionKey, Head]:
    with key_table(con, "_sink_keys", keys, ["company_id", "user_id", "month"]):
        rows = con.execute(
            """
            SELECT s.company_id, s.user_id, s.month, s.version, s.digest, s.charged, s.unit_price_usd
            FROM snapshot_versions AS s
            JOIN _sink_keys AS k USING (company_id, user_id, month)
            QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id, s.month ORDER BY s.version DESC) = 1
            """
        ).fetchall()
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
_COLUMN_NAMES = (*DECISION_COLUMNS, "plan", "digest", *_MESSAGE_FIELDS, "kafka_partition", "kafka_offset")


def store_plain_decisions(
    con: duckdb.DuckDBPyConnection, items: list[Item], batch: Batch, res: BatchResult, rows: Rows
) -> bool:
    """`store_decisions` of a batch's decisions by column, for the common case of a close: every
    message plain (`Item.plain`) or a decision_block, its checks and digest passing
    (`ledger.records.decision_columns`, `block_columns`), each key once in the batch and no month
    invoiced (no adjustment). Then no Decision or row is built per message and the versions need
    one heads lookup. False, with nothing done, otherwise: the caller takes the per-message path
    (`expanded`, `decision_of` + `store_decisions`), which names every problem; both store the
    same rows (tests/unit/ledger/test_columnar_decisions.py)."""
    parts = _column_parts(items, DecisionEncoder()) if items else None
    if parts is None:
        return False
    columns: dict[str, list] = {name: [] for name in _COLUMN_NAMES}
    for part in parts:
        for name, values in part.items():
            columns[name].extend(values)
    keys = list(zip(columns["company_id"], columns["user_id"], columns["month"], strict=True))
    if len(set(keys)) < len(keys) or _invoiced(con, keys):
        return False
    keep, versions, corrects = _new_versions(keys, columns["digest"], _heads(con, keys), res)
    if keep is not None:
        columns = {name: [values[i] for i in keep] for name, values in columns.items()}
    columns["emitted_version"] = columns.pop("version")
    rows.version_columns = {**columns, "version": versions, "corrects_version": corrects}
    rows.version_constants = {"received_at": batch.now, "batch_id": batch.batch_id}
    return True


def _column_parts(items: list[Item], encoder: DecisionEncoder) -> list[dict[str, list]] | None:
    """The stored columns (`_COLUMN_NAMES`) of each run of plain decision messages and of each
    decision_block, in item order; None when one of them is not the common case."""
    parts: list[dict[str, list]] = []
    run: list[Item] = []
    for it in [*items, None]:
        if it is not None and it.msg is not None and it.msg["kind"] == "decision":
            run.append(it)
            continue
        if run:
            part = _messages_part(run, encoder)
            if part is None:
                return None
            parts.append(part)
            run = []
        if it is not None:
            part = _block_part(it, encoder)
            if part is None:
                return None
            parts.append(part)
    return parts


def _messages_part(items: list[Item], encoder: DecisionEncoder) -> dict[str, list] | None:
    msgs = [message(it) for it in items]
    # not plain: a month seen first in this batch (plain_decision knows it now), or a problem
    if not all(it.plain or plain_decision(m) for it, m in zip(items, msgs, strict=True)):
        return None
    cols = decision_columns(msgs, encoder)
    if cols is None:
        return None
    return {
        **cols._asdict(),
        **{name: list(map(dict.get, msgs, repeat(name))) for name in _MESSAGE_FIELDS},
        "kafka_partition": [it.kafka_partition for it in items],
        "kafka_offset": [it.kafka_offset for it in items],
    }


def _block_part(it: Item, encoder: DecisionEncoder) -> dict[str, list] | None:
    block = message(it)
    cols = block_columns(block, encoder)
    if cols is None:
        return None
    n = len(cols.user_id)
    return {
        **cols._asdict(),
        "amend_reason": [None] * n, "version": [1] * n, "in_report": block["in_report"],
        **{name: [block.get(name)] * n for name in ("close_id", "partition", "emitted_at")},
        "kafka_partition": [it.kafka_partition] * n, "kafka_offset": [it.kafka_offset] * n,
    }  # fmt: skip


def _new_versions(
    keys: list[DecisionKey], digests: list[str], heads: dict[DecisionKey, Head], res: BatchResult
) -> tuple[list[int] | None, list[int], list[int | None]]:
    """Which messages are stored (None: all), their versions and the versions they correct: a
    message whose digest is its key's latest is a redelivery (keys are distinct in the batch)."""
    if not heads:  # the common case of a first close: every decision is version 1
        return None, [1] * len(keys), [None] * len(keys)
    keep, versions, corrects = [], [], []
    for i, (key, dg) in enumerate(zip(keys, digests, strict=True)):
        head = heads.get(key)
        if head is None or head.digest != dg:
            keep.append(i)
            versions.append(1 if head is None else head.version + 1)
            corrects.append(None if head is None else head.version)
    if len(keep) < len(keys):
        res.duplicates["decision"] += len(keys) - len(keep)
    return keep, versions, corrects


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
