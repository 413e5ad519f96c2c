"""The DuckDB side of the sink: snapshot messages in, versioned tables and analysts' views out.

Everything here is testable without Kafka: `write_batch(con, items, topic=...)` stores one batch of
snapshot-topic records (already decoded into `Item`s) in ONE transaction, together with the Kafka
position they came from. `streams/sink_consumer.py` is the Kafka loop around it.

Rules this module keeps (docs/duckdb.md explains them for analysts):

- The sink is the single writer of versions. A `decision` whose digest equals the latest stored
  version's digest for (company, user, month) is a redelivery and is skipped; otherwise it is
  stored as latest + 1 (1 when none) with `corrects_version` = the previous latest. The emitter's
  own version number and amend reason are kept beside it. `company_month` likewise, per
  (company, month), by its content.
- Positions: `sink_offsets` holds, per topic partition, the first offset not yet written; it is
  updated in the transaction that wrote the rows. Records below the stored position are dropped
  inside the transaction, so even a second sink racing the first cannot store anything twice.
- A month is complete when every partition reported `partition_done` AND the decisions and
  company_months each report counted (for its partition) are stored: the reports and the
  decisions can sit on different topic partitions, so "all reports seen" alone could expose half a
  month. Completion is a row in `month_completions`, written in the transaction that completed it.
- R11: when a month completes, an invoice per company is issued (inserted, never updated). Its
  lines are counted from the stored decisions at that moment (the latest version of each account);
  the company's profile (PO number, payment method, notices, free reason) comes from the latest
  `company_month`. Every decision stored later for an invoiced company-month becomes an
  `invoice_adjustments` row (new charged price - old charged price), pending until the company's
  next invoice for a later month is issued, which carries it.
- Connections are short: open, write one batch, close. DuckDB lets only one process hold a
  read-write file, so this is what lets analysts open it read-only between batches.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from projections.decide import DECISION_COLUMNS
from projections.rules import INVOICE_PAYMENT_THRESHOLD_USD
from projections.snapshots import row_digest

log = logging.getLogger("seatledger.sink")

SQL_DIR = Path(__file__).parent / "sql"
# Creation order (views after the tables they read). One model per file, grain at its top.
TABLES = (
    "sink_batches",
    "sink_offsets",
    "sink_rejects",
    "snapshot_versions",
    "company_month_versions",
    "company_month_mau",
    "partition_reports",
    "month_completions",
    "invoices",
    "invoice_lines",
    "invoice_adjustments",
    "invoice_annotations",
    "disputes",
)
VIEWS = (
    "latest_decisions",
    "account_decisions",
    "billable_users",
    "month_closes",
    "mau_daily",
    "reconciliation",
    "close_certificates",
)
MODELS = TABLES + VIEWS
KINDS = ("decision", "company_month", "partition_done", "dispute_applied")
CENTS = Decimal("0.01")
ZERO = Decimal("0.00")


# ==================================================================================================
# Schema and connections


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Execute and fetch everything: DuckDB 2 refuses new work while a result is unfinished."""
    return con.execute(sql, params or []).fetchall()


def model_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (if missing) and (re)create every view. Idempotent."""
    for name in MODELS:
        _run(con, model_sql(name))


class DatabaseBusy(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole timeout."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    timeout: float = 10.0,
    on_wait: Callable[[float], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying with backoff while another process holds its lock.

    `on_wait(seconds_waited)` is called once if a wait was needed. Raises DatabaseBusy after
    `timeout` seconds (0: one attempt).
    """
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= timeout:
                raise DatabaseBusy(f"{path} is locked by another process (waited {waited:.1f}s): {exc}") from exc
            time.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(delay * 2, 0.25)
            continue
        waited = time.monotonic() - start
        if on_wait is not None and waited > 0.001:
            on_wait(waited)
        return con


@contextmanager
def read_connection(path: Path | str, timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """For analysts and commands: a read-only connection held only for the `with` block.

    Waits while the sink is writing a batch (usually well under a second). Keep the block short:
    while it is open the sink cannot write and buffers in memory.
    """
    con = connect(path, read_only=True, timeout=timeout)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def write_connection(path: Path | str, timeout: float = 10.0, on_wait=None) -> Iterator[duckdb.DuckDBPyConnection]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = connect(path, timeout=timeout, on_wait=on_wait)
    try:
        yield con
    finally:
        con.close()


# ==================================================================================================
# Records in


@dataclass(slots=True)
class Item:
    """One snapshot message (an element of a Kafka record) with where it came from.

    `msg` is the decoded JSON object, or None with `error` set when the record could not be read.
    A Kafka record holding a JSON array yields one Item per element (same offset, `index` 0, 1, ...).
    """

    kafka_partition: int
    kafka_offset: int
    msg: dict | None
    index: int = 0
    error: str | None = None
    raw: bytes | None = None


def parse_record(partition: int, offset: int, value: bytes | None) -> list[Item]:
    """A Kafka record's value -> Items: a JSON object, or a JSON array of objects (packed)."""
    if value is None:
        return [Item(partition, offset, None, 0, "empty record (no value)", None)]
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [Item(partition, offset, None, 0, f"not JSON: {exc}", value)]
    elems = obj if isinstance(obj, list) else [obj]
    out = []
    for i, el in enumerate(elems):
        if not isinstance(el, dict):
            out.append(Item(partition, offset, None, i, f"element {i} is not a JSON object", orjson.dumps(el)))
        elif el.get("kind") not in KINDS:
            out.append(Item(partition, offset, None, i, f"unknown kind {el.get('kind')!r}", orjson.dumps(el)))
        else:
            out.append(Item(partition, offset, el, i))
    return out


# ==================================================================================================
# Pure helpers


def price_charged(charged: bool, unit_price: Decimal) -> Decimal:
    return unit_price if charged else ZERO


def content_digest(invoice: dict, mau: list) -> str:
    """What makes two company_month messages the same version: invoice JSON and MAU series."""
    body = orjson.dumps({"invoice": invoice, "mau": mau}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Head:
    """The latest stored version of a decision."""

    version: int
    digest: str
    charged: bool
    unit_price_usd: Decimal

    @property
    def amount(self) -> Decimal:
        return price_charged(self.charged, self.unit_price_usd)


_STR_COLUMNS = ("company_id", "user_id", "month", "tier", "rule", "reason", "evidence", "ruleset_version")
_PRICE_LIMIT = Decimal("1e10")


@dataclass(frozen=True, slots=True)
class DecisionValues:
    company_id: str
    user_id: str
    month: str
    billable: bool
    charged: bool
    tier: str
    rule: str
    reason: str
    evidence: str
    unit_price_usd: Decimal
    ruleset_version: str
    plan: str
    digest_ok: bool  # the message's digest is projections.snapshots.digest of these values


def decision_values(msg: dict) -> DecisionValues:
    """Validate and type a decision message's published values (raises on a malformed message).

    The digest is recomputed with projections.snapshots.row_digest (sha256 of the sorted-key
    JSON of the published row, price as its 2-decimal string), from the message's own values.
    """
    try:
        row = {c: msg[c] for c in DECISION_COLUMNS}
        dg = msg["digest"]
    except KeyError as exc:
        raise ValueError(f"decision message lacks {exc.args[0]}") from None
    for c in _STR_COLUMNS:
        if not isinstance(row[c], str):
            raise ValueError(f"{c} must be a string")
    if not isinstance(row["billable"], bool) or not isinstance(row["charged"], bool):
        raise ValueError("billable and charged must be booleans")
    price = Decimal(str(row["unit_price_usd"])).quantize(CENTS)
    if abs(price) >= _PRICE_LIMIT:
        raise ValueError(f"unit_price_usd out of range: {row['unit_price_usd']!r}")
    row["unit_price_usd"] = str(price)
    ok = row_digest(row) == dg
    return DecisionValues(
        row["company_id"],
        row["user_id"],
        row["month"],
        row["billable"],
        row["charged"],
        row["tier"],
        row["rule"],
        row["reason"],
        row["evidence"],
        price,
        row["ruleset_version"],
        str(msg.get("plan") or ""),
        ok,
    )


def invoice_lines_from_counts(counts: dict[tuple[str, str, Decimal], int]) -> list[dict]:
    """Lines by plan x tier x unit price, sorted like projections.invoice.build_invoice."""
    lines = []
    for (plan, tier, price), n in sorted(counts.items()):
        lines.append(
            {"plan": plan, "tier": tier, "count": n, "unit_price_usd": price, "amount_usd": (price * n).quantize(CENTS)}
        )
    return lines


def assemble_invoice(
    invoice_json: dict,
    *,
    lines: list[dict],
    billable: int,
    charged: int,
    adjustments_usd: Decimal,
) -> dict:
    """R11/R12: the issued invoice: lines from the stored decisions, profile from the close's JSON."""
    subtotal = sum((line["amount_usd"] for line in lines), ZERO)
    close_lines = [
        (line["plan"], line["tier"], int(line["count"]), Decimal(str(line["unit_price_usd"])))
        for line in invoice_json.get("lines", [])
    ]
    ours = [(line["plan"], line["tier"], line["count"], line["unit_price_usd"]) for line in lines]
    matches = sorted(close_lines) == sorted(ours)
    close_subtotal = invoice_json.get("subtotal_usd")
    notices = list(invoice_json.get("notices") or [])
    if not matches:
        notices.append(
            f"lines counted from the stored decisions (USD {subtotal}) differ from the close's "
            f"(USD {close_subtotal}): a correction arrived before the invoice was issued"
        )
    return {
        "plan": invoice_json.get("plan"),
        "billable_accounts": billable,
        "charged_accounts": charged,
        "subtotal_usd": subtotal,
        "adjustments_usd": adjustments_usd,
        "total_usd": subtotal + adjustments_usd,
        "currency": "USD",
        "taxes": "excluded",
        "po_number": invoice_json.get("po_number"),
        "payment_method": invoice_json.get("payment_method"),
        "card_brand": invoice_json.get("card_brand"),
        "billing_country": invoice_json.get("billing_country"),
        "qualifies_for_invoice_payment": subtotal > INVOICE_PAYMENT_THRESHOLD_USD,
        "free_reason": invoice_json.get("free_reason"),
        "notices": orjson.dumps(notices).decode(),
        "close_subtotal_usd": Decimal(str(close_subtotal)) if close_subtotal is not None else None,
        "matches_close": matches,
    }


# ==================================================================================================
# Arrow schemas of the inserted rows (column order = the tables')

TS = pa.timestamp("us", tz="UTC")
PRICE = pa.decimal128(12, 2)
MONEY = pa.decimal128(14, 2)

SCHEMAS: dict[str, pa.Schema] = {
    "snapshot_versions": pa.schema(
        [
            ("company_id", pa.string()),
            ("user_id", pa.string()),
            ("month", pa.string()),
            ("billable", pa.bool_()),
            ("charged", pa.bool_()),
            ("tier", pa.string()),
            ("rule", pa.string()),
            ("reason", pa.string()),
            ("evidence", pa.string()),
            ("unit_price_usd", PRICE),
            ("ruleset_version", pa.string()),
            ("plan", pa.string()),
            ("version", pa.int32()),
            ("corrects_version", pa.int32()),
            ("amend_reason", pa.string()),
            ("emitted_version", pa.int32()),
            ("in_report", pa.bool_()),
            ("digest", pa.string()),
            ("close_id", pa.string()),
            ("partition", pa.int32()),
            ("emitted_at", pa.string()),
            ("received_at", TS),
            ("batch_id", pa.int64()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
        ]
    ),
    "company_month_versions": pa.schema(
        [
            ("company_id", pa.string()),
            ("month", pa.string()),
            ("version", pa.int32()),
            ("corrects_version", pa.int32()),
            ("emitted_version", pa.int32()),
            ("content_digest", pa.string()),
            ("invoice", pa.string()),
            ("mau", pa.string()),
            ("close_id", pa.string()),
            ("partition", pa.int32()),
            ("emitted_at", pa.string()),
            ("received_at", TS),
            ("batch_id", pa.int64()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
        ]
    ),
    "company_month_mau": pa.schema(
        [
            ("company_id", pa.string()),
            ("month", pa.string()),
            ("version", pa.int32()),
            ("day", pa.date32()),
            ("mau", pa.int32()),
        ]
    ),
    "partition_reports": pa.schema(
        [
            ("month", pa.string()),
            ("partition", pa.int32()),
            ("partitions", pa.int32()),
            ("close_id", pa.string()),
            ("companies", pa.int32()),
            ("accounts", pa.int32()),
            ("checksum", pa.string()),
            ("events_counted", pa.int64()),
            ("rejected", pa.int64()),
            ("duplicates_ignored", pa.int64()),
            ("late_since_close", pa.int64()),
            ("counts", pa.string()),
            ("emitted_at", pa.string()),
            ("received_at", TS),
            ("batch_id", pa.int64()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
        ]
    ),
    "invoice_adjustments": pa.schema(
        [
            ("company_id", pa.string()),
            ("corrected_month", pa.string()),
            ("user_id", pa.string()),
            ("corrects_version", pa.int32()),
            ("new_version", pa.int32()),
            ("reason", pa.string()),
            ("amount_usd", PRICE),
            ("created_at", TS),
            ("applied_to_invoice_month", pa.string()),
            ("applied_at", TS),
        ]
    ),
    "disputes": pa.schema(
        [
            ("ticket", pa.string()),
            ("company_id", pa.string()),
            ("month", pa.string()),
            ("requested_by", pa.string()),
            ("applied_at", pa.string()),
            ("changes", pa.string()),
            ("received_at", TS),
            ("batch_id", pa.int64()),
        ]
    ),
    "sink_rejects": pa.schema(
        [
            ("topic", pa.string()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("error", pa.string()),
            ("raw", pa.string()),
            ("received_at", TS),
        ]
    ),
    "invoices": pa.schema(
        [
            ("company_id", pa.string()),
            ("month", pa.string()),
            ("plan", pa.string()),
            ("billable_accounts", pa.int32()),
            ("charged_accounts", pa.int32()),
            ("subtotal_usd", MONEY),
            ("adjustments_usd", MONEY),
            ("total_usd", MONEY),
            ("currency", pa.string()),
            ("taxes", pa.string()),
            ("po_number", pa.string()),
            ("payment_method", pa.string()),
            ("card_brand", pa.string()),
            ("billing_country", pa.string()),
            ("qualifies_for_invoice_payment", pa.bool_()),
            ("free_reason", pa.string()),
            ("notices", pa.string()),
            ("company_month_version", pa.int32()),
            ("close_subtotal_usd", MONEY),
            ("matches_close", pa.bool_()),
            ("issued_at", TS),
            ("batch_id", pa.int64()),
        ]
    ),
    "invoice_lines": pa.schema(
        [
            ("company_id", pa.string()),
            ("month", pa.string()),
            ("line_no", pa.int32()),
            ("plan", pa.string()),
            ("tier", pa.string()),
            ("count", pa.int32()),
            ("unit_price_usd", PRICE),
            ("amount_usd", MONEY),
        ]
    ),
}


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> int:
    """INSERT ... SELECT * FROM an Arrow table built from `rows` (never row by row)."""
    if not rows:
        return 0
    schema = SCHEMAS[table]
    arrow = pa.Table.from_pylist(rows, schema=schema)
    con.register("_sink_rows", arrow)
    try:
        _run(con, f"INSERT INTO {table} SELECT * FROM _sink_rows")
    finally:
        con.unregister("_sink_rows")
    return len(rows)


def _keys_table(con, name: str, rows: list[tuple], names: list[str]) -> None:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    con.register(name, pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, cols, strict=True)}))


# ==================================================================================================
# One batch, one transaction


@dataclass
class BatchResult:
    batch_id: int | None = None
    messages: int = 0  # Items handed in
    already_written: int = 0  # below the stored position (written before)
    stored: Counter = field(default_factory=Counter)  # rows per table
    duplicates: Counter = field(default_factory=Counter)  # skipped redeliveries per kind
    rejects: int = 0
    digest_mismatches: int = 0
    months_completed: list[str] = field(default_factory=list)
    invoices_issued: int = 0
    adjustments_created: int = 0
    adjustments_applied: int = 0
    positions: dict[int, int] = field(default_factory=dict)  # stored next offsets after the batch

    @property
    def rows_written(self) -> int:
        return sum(self.stored.values())


def read_positions(con: duckdb.DuckDBPyConnection, topic: str) -> dict[int, int]:
    rows = con.execute("SELECT partition, next_offset FROM sink_offsets WHERE topic = ?", [topic]).fetchall()
    return {int(p): int(o) for p, o in rows}


def write_batch(
    con: duckdb.DuckDBPyConnection,
    items: list[Item],
    *,
    topic: str,
    now: datetime | None = None,
) -> BatchResult:
    """Store `items` (in consumption order) and their Kafka positions in one transaction."""
    now = now or datetime.now(UTC)
    res = BatchResult(messages=len(items))
    _run(con, "BEGIN TRANSACTION")
    try:
        _write(con, items, topic, now, res)
        _run(con, "COMMIT")
    except BaseException:
        _run(con, "ROLLBACK")
        raise
    return res


def _write(con, items: list[Item], topic: str, now: datetime, res: BatchResult) -> None:
    stored_pos = read_positions(con, topic)
    fresh = [it for it in items if it.kafka_offset >= stored_pos.get(it.kafka_partition, 0)]
    res.already_written = len(items) - len(fresh)
    batch_id = _run(con, "SELECT coalesce(max(batch_id), 0) + 1 FROM sink_batches")[0][0]
    res.batch_id = batch_id

    rows: dict[str, list[dict]] = {t: [] for t in SCHEMAS}
    dec_items, cm_items, done_items, dispute_items = [], [], [], []
    for it in fresh:
        if it.msg is None:
            rows["sink_rejects"].append(_reject(topic, it, it.error or "unreadable", now))
            continue
        kind = it.msg["kind"]
        if kind == "decision":
            try:
                dec_items.append((it, decision_values(it.msg)))
            except Exception as exc:
                rows["sink_rejects"].append(_reject(topic, it, f"bad decision: {exc}", now))
        elif kind == "company_month":
            cm_items.append(it)
        elif kind == "partition_done":
            done_items.append(it)
        else:
            dispute_items.append(it)

    _decisions(con, dec_items, rows, res, now, batch_id)
    _company_months(con, cm_items, rows, res, topic, now, batch_id)
    _partition_reports(done_items, rows, res, topic, now, batch_id)
    _disputes(con, dispute_items, rows, res, topic, now, batch_id)
    res.rejects = len(rows["sink_rejects"])
    res.adjustments_created = len(rows["invoice_adjustments"])

    for table in (
        "snapshot_versions",
        "company_month_versions",
        "company_month_mau",
        "partition_reports",
        "disputes",
        "invoice_adjustments",
        "sink_rejects",
    ):
        n = _insert(con, table, rows[table])
        if n:
            res.stored[table] += n

    res.months_completed = _complete_months(con, now, batch_id)
    _issue_invoices(con, now, batch_id, res)

    # Positions: the first offset after every record of this batch, per partition.
    new_pos = dict(stored_pos)
    for it in items:
        if it.kafka_offset + 1 > new_pos.get(it.kafka_partition, 0):
            new_pos[it.kafka_partition] = it.kafka_offset + 1
    changed = [(p, o) for p, o in new_pos.items() if stored_pos.get(p) != o]
    if changed:
        offsets = pa.table(
            {
                "topic": pa.array([topic] * len(changed), pa.string()),
                "partition": pa.array([p for p, _ in changed], pa.int32()),
                "next_offset": pa.array([o for _, o in changed], pa.int64()),
                "updated_at": pa.array([now] * len(changed), TS),
            }
        )
        con.register("_sink_offsets", offsets)
        try:
            _run(con, "INSERT OR REPLACE INTO sink_offsets SELECT * FROM _sink_offsets")
        finally:
            con.unregister("_sink_offsets")
    res.positions = new_pos
    _run(
        con,
        "INSERT INTO sink_batches VALUES (?, ?, ?, ?, ?)",
        [batch_id, now, len(items), res.rows_written, sum(res.duplicates.values())],
    )


def _reject(topic: str, it: Item, error: str, now: datetime) -> dict:
    raw = it.raw if it.raw is not None else (orjson.dumps(it.msg) if it.msg is not None else None)
    return {
        "topic": topic,
        "kafka_partition": it.kafka_partition,
        "kafka_offset": it.kafka_offset,
        "error": error,
        "raw": raw.decode("utf-8", "replace") if raw is not None else None,
        "received_at": now,
    }


def _int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


def _decisions(con, dec_items, rows, res: BatchResult, now, batch_id) -> None:
    if not dec_items:
        return
    keys = sorted({(v.company_id, v.user_id, v.month) for _, v in dec_items})
    _keys_table(con, "_sink_keys", keys, ["company_id", "user_id", "month"])
    try:
        heads = {
            (c, u, m): Head(int(v), dg, bool(ch), Decimal(p))
            for c, u, m, v, dg, ch, p in con.execute(
                """
                SELECT s.company_id, s.user_id, s.month, s.version, s.digest, s.charged, s.unit_price_usd
                FROM snapshot_versions AS s
                JOIN _sink_keys AS k USING (company_id, user_id, month)
                QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id, s.month ORDER BY s.version DESC) = 1
                """
            ).fetchall()
        }
        cms = sorted({(c, m) for c, _, m in keys})
        _keys_table(con, "_sink_cms", cms, ["company_id", "month"])
        invoiced = {
            (c, m)
            for c, m in con.execute(
                "SELECT i.company_id, i.month FROM invoices AS i JOIN _sink_cms USING (company_id, month)"
            ).fetchall()
        }
    finally:
        con.unregister("_sink_keys")
        con.unregister("_sink_cms")

    out = rows["snapshot_versions"]
    for it, vals in dec_items:
        msg, d = it.msg, vals
        if not d.digest_ok:
            res.digest_mismatches += 1
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
        key = (d.company_id, d.user_id, d.month)
        head = heads.get(key)
        if head is not None and head.digest == msg["digest"]:
            res.duplicates["decision"] += 1
            continue
        version = 1 if head is None else head.version + 1
        corrects = None if head is None else head.version
        out.append(
            {
                "company_id": d.company_id,
                "user_id": d.user_id,
                "month": d.month,
                "billable": d.billable,
                "charged": d.charged,
                "tier": d.tier,
                "rule": d.rule,
                "reason": d.reason,
                "evidence": d.evidence,
                "unit_price_usd": d.unit_price_usd,
                "ruleset_version": d.ruleset_version,
                "plan": d.plan,
                "version": version,
                "corrects_version": corrects,
                "amend_reason": msg.get("amend_reason"),
                "emitted_version": _int_or_none(msg.get("version")),
                "in_report": msg.get("in_report"),
                "digest": msg["digest"],
                "close_id": msg.get("close_id"),
                "partition": _int_or_none(msg.get("partition")),
                "emitted_at": msg.get("emitted_at"),
                "received_at": now,
                "batch_id": batch_id,
                "kafka_partition": it.kafka_partition,
                "kafka_offset": it.kafka_offset,
            }
        )
        new_amount = price_charged(d.charged, d.unit_price_usd)
        if (d.company_id, d.month) in invoiced:
            rows["invoice_adjustments"].append(
                {
                    "company_id": d.company_id,
                    "corrected_month": d.month,
                    "user_id": d.user_id,
                    "corrects_version": corrects,
                    "new_version": version,
                    "reason": msg.get("amend_reason") or ("new_account" if head is None else "restated"),
                    "amount_usd": new_amount - (head.amount if head is not None else ZERO),
                    "created_at": now,
                    "applied_to_invoice_month": None,
                    "applied_at": None,
                }
            )
        heads[key] = Head(version, msg["digest"], d.charged, d.unit_price_usd)


def _company_months(con, cm_items, rows, res: BatchResult, topic, now, batch_id) -> None:
    if not cm_items:
        return
    good = []
    for it in cm_items:
        msg = it.msg
        try:
            inv = msg["invoice"]
            company, month = str(msg["company_id"]), str(msg["month"])
            if not isinstance(inv, dict):
                raise ValueError("invoice must be an object")
            mau = [(date.fromisoformat(d), int(n)) for d, n in (msg.get("mau") or [])]
            good.append((it, company, month, inv, mau, content_digest(inv, msg.get("mau") or [])))
        except Exception as exc:
            rows["sink_rejects"].append(_reject(topic, it, f"bad company_month: {exc}", now))
    if not good:
        return
    keys = sorted({(c, m) for _, c, m, *_ in good})
    _keys_table(con, "_sink_cms", keys, ["company_id", "month"])
    try:
        heads = {
            (c, m): (int(v), dg)
            for c, m, v, dg in con.execute(
                """
                SELECT v.company_id, v.month, v.version, v.content_digest
                FROM company_month_versions AS v JOIN _sink_cms USING (company_id, month)
                QUALIFY row_number() OVER (PARTITION BY v.company_id, v.month ORDER BY v.version DESC) = 1
                """
            ).fetchall()
        }
    finally:
        con.unregister("_sink_cms")
    for it, company, month, inv, mau, cdg in good:
        msg = it.msg
        head = heads.get((company, month))
        if head is not None and head[1] == cdg:
            res.duplicates["company_month"] += 1
            continue
        version = 1 if head is None else head[0] + 1
        rows["company_month_versions"].append(
            {
                "company_id": company,
                "month": month,
                "version": version,
                "corrects_version": None if head is None else head[0],
                "emitted_version": _int_or_none(msg.get("version")),
                "content_digest": cdg,
                "invoice": orjson.dumps(inv).decode(),
                "mau": orjson.dumps(msg.get("mau") or []).decode(),
                "close_id": msg.get("close_id"),
                "partition": _int_or_none(msg.get("partition")),
                "emitted_at": msg.get("emitted_at"),
                "received_at": now,
                "batch_id": batch_id,
                "kafka_partition": it.kafka_partition,
                "kafka_offset": it.kafka_offset,
            }
        )
        rows["company_month_mau"].extend(
            {"company_id": company, "month": month, "version": version, "day": d, "mau": n} for d, n in mau
        )
        heads[(company, month)] = (version, cdg)


def _partition_reports(done_items, rows, res: BatchResult, topic, now, batch_id) -> None:
    for it in done_items:
        msg = it.msg
        try:
            counts = msg.get("counts") or {}
            row = {
                "month": str(msg["month"]),
                "partition": int(msg["partition"]),
                "partitions": int(msg["partitions"]),
                "close_id": msg.get("close_id"),
                "companies": int(msg.get("companies") or 0),
                "accounts": int(msg.get("accounts") or 0),
                "checksum": str(msg["checksum"]),
                "events_counted": _int_or_none(counts.get("events_counted")),
                "rejected": _int_or_none(counts.get("rejected")),
                "duplicates_ignored": _int_or_none(counts.get("duplicates_ignored")),
                "late_since_close": _int_or_none(counts.get("late_since_close")),
                "counts": orjson.dumps(counts).decode(),
                "emitted_at": msg.get("emitted_at"),
                "received_at": now,
                "batch_id": batch_id,
                "kafka_partition": it.kafka_partition,
                "kafka_offset": it.kafka_offset,
            }
        except Exception as exc:
            rows["sink_rejects"].append(_reject(topic, it, f"bad partition_done: {exc}", now))
            continue
        rows["partition_reports"].append(row)


def dispute_applied_message(
    ticket: str, company_id: str, month: str, *, requested_by: str, applied_at: str, changes: list[dict]
) -> dict:
    """The `dispute_applied` snapshot-topic message (produced by the dispute tool, stored once per
    ticket). `changes`: one object per changed account, e.g. {user_id, from_version, to_version,
    field changes...}: stored as sent."""
    return {
        "kind": "dispute_applied",
        "format": 1,
        "ticket": ticket,
        "company_id": company_id,
        "month": month,
        "requested_by": requested_by,
        "applied_at": applied_at,
        "changes": changes,
    }


def _disputes(con, items, rows, res: BatchResult, topic, now, batch_id) -> None:
    if not items:
        return
    tickets = sorted({str(it.msg.get("ticket")) for it in items})
    _keys_table(con, "_sink_tickets", [(t,) for t in tickets], ["ticket"])
    try:
        seen = {t for (t,) in con.execute("SELECT ticket FROM disputes JOIN _sink_tickets USING (ticket)").fetchall()}
    finally:
        con.unregister("_sink_tickets")
    for it in items:
        msg = it.msg
        try:
            ticket = msg["ticket"]
            if not isinstance(ticket, str) or not ticket:
                raise ValueError("ticket must be a non-empty string")
            row = {
                "ticket": ticket,
                "company_id": str(msg["company_id"]),
                "month": str(msg["month"]),
                "requested_by": msg.get("requested_by"),
                "applied_at": msg.get("applied_at"),
                "changes": orjson.dumps(msg.get("changes") or []).decode(),
                "received_at": now,
                "batch_id": batch_id,
            }
        except Exception as exc:
            rows["sink_rejects"].append(_reject(topic, it, f"bad dispute_applied: {exc}", now))
            continue
        if ticket in seen:
            res.duplicates["dispute_applied"] += 1
            continue
        seen.add(ticket)
        rows["disputes"].append(row)


def _complete_months(con, now: datetime, batch_id: int) -> list[str]:
    """Months that became complete with this batch -> month_completions rows."""
    done = con.execute(
        """
        WITH reports AS (
            SELECT month, partition, partitions, companies, accounts
            FROM partition_reports
            WHERE month NOT IN (SELECT month FROM month_completions)
            QUALIFY row_number() OVER (PARTITION BY month, partition ORDER BY batch_id DESC, kafka_offset DESC) = 1
        ),
        stored AS (
            SELECT month, partition, count(*) AS n
            FROM (SELECT DISTINCT month, partition, company_id, user_id FROM snapshot_versions
                  WHERE month IN (SELECT month FROM reports))
            GROUP BY month, partition
        ),
        cms AS (
            SELECT month, partition, count(*) AS n
            FROM (SELECT DISTINCT month, partition, company_id FROM company_month_versions
                  WHERE month IN (SELECT month FROM reports))
            GROUP BY month, partition
        )
        SELECT r.month, max(r.partitions) AS partitions
        FROM reports AS r
        LEFT JOIN stored AS s ON s.month = r.month AND s.partition = r.partition
        LEFT JOIN cms AS c ON c.month = r.month AND c.partition = r.partition
        GROUP BY r.month
        HAVING count(*) >= max(r.partitions)
           AND bool_and(coalesce(s.n, 0) >= r.accounts AND coalesce(c.n, 0) >= r.companies)
        ORDER BY r.month
        """
    ).fetchall()
    for month, partitions in done:
        _run(con, "INSERT INTO month_completions VALUES (?, ?, ?, ?)", [month, partitions, now, batch_id])
    return [m for m, _ in done]


def _issue_invoices(con, now: datetime, batch_id: int, res: BatchResult) -> None:
    """Issue every due invoice: complete month, company_month stored, no invoice yet."""
    due = con.execute(
        """
        SELECT v.company_id, v.month, v.version, v.invoice
        FROM company_month_versions AS v
        WHERE v.month IN (SELECT month FROM month_completions)
          AND NOT EXISTS (SELECT 1 FROM invoices AS i WHERE i.company_id = v.company_id AND i.month = v.month)
        QUALIFY row_number() OVER (PARTITION BY v.company_id, v.month ORDER BY v.version DESC) = 1
        ORDER BY v.month, v.company_id
        """
    ).fetchall()
    if not due:
        return
    by_month: dict[str, list[tuple]] = {}
    for c, m, v, inv in due:
        by_month.setdefault(m, []).append((c, v, orjson.loads(inv)))
    for month in sorted(by_month):
        group = by_month[month]
        _keys_table(con, "_sink_due", [(c,) for c, _, _ in group], ["company_id"])
        try:
            line_counts: dict[str, dict] = {}
            totals: dict[str, tuple[int, int]] = {}
            for c, plan, tier_, price, charged, billable, n in con.execute(
                """
                SELECT company_id, plan, tier, unit_price_usd, charged, billable, count(*)
                FROM (
                    SELECT s.* FROM snapshot_versions AS s JOIN _sink_due USING (company_id)
                    WHERE s.month = ?
                    QUALIFY row_number() OVER (PARTITION BY s.company_id, s.user_id ORDER BY s.version DESC) = 1
                )
                GROUP BY ALL
                """,
                [month],
            ).fetchall():
                b, ch = totals.get(c, (0, 0))
                totals[c] = (b + (n if billable else 0), ch + (n if charged else 0))
                if charged:
                    key = (plan, tier_, Decimal(price))
                    lc = line_counts.setdefault(c, {})
                    lc[key] = lc.get(key, 0) + n
            adj = {
                c: Decimal(s)
                for c, s in con.execute(
                    """
                    SELECT a.company_id, sum(a.amount_usd)
                    FROM invoice_adjustments AS a JOIN _sink_due USING (company_id)
                    WHERE a.applied_to_invoice_month IS NULL AND a.corrected_month < ?
                    GROUP BY a.company_id
                    """,
                    [month],
                ).fetchall()
            }
            applied = con.execute(
                """
                UPDATE invoice_adjustments SET applied_to_invoice_month = ?, applied_at = ?
                WHERE applied_to_invoice_month IS NULL AND corrected_month < ?
                  AND company_id IN (SELECT company_id FROM _sink_due)
                """,
                [month, now, month],
            ).fetchall()[0][0]
            res.adjustments_applied += int(applied)
        finally:
            con.unregister("_sink_due")
        inv_rows, line_rows = [], []
        for c, version, inv_json in group:
            lines = invoice_lines_from_counts(line_counts.get(c, {}))
            billable, charged = totals.get(c, (0, 0))
            inv = assemble_invoice(
                inv_json, lines=lines, billable=billable, charged=charged, adjustments_usd=adj.get(c, ZERO)
            )
            inv_rows.append(
                {
                    "company_id": c,
                    "month": month,
                    **inv,
                    "company_month_version": version,
                    "issued_at": now,
                    "batch_id": batch_id,
                }
            )
            line_rows.extend({"company_id": c, "month": month, "line_no": i, **line} for i, line in enumerate(lines, 1))
        res.stored["invoices"] += _insert(con, "invoices", inv_rows)
        if line_rows:
            res.stored["invoice_lines"] += _insert(con, "invoice_lines", line_rows)
        res.invoices_issued += len(inv_rows)


# ==================================================================================================
# R11's exception: a PO number added to an issued invoice


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
        _run(con, "BEGIN TRANSACTION")
        found = con.execute(
            "SELECT count(*) FROM invoices WHERE company_id = ? AND month = ?", [company_id, month]
        ).fetchall()[0][0]
        if not found:
            _run(con, "ROLLBACK")
            raise InvoiceNotIssued(f"no invoice issued for company {company_id} month {month}")
        _run(
            con,
            "INSERT INTO invoice_annotations VALUES (?, ?, ?, ?, ?)",
            [company_id, month, po_number, now, annotated_by],
        )
        _run(con, "COMMIT")
    return now
