"""Snapshot-topic records in: Kafka values -> Items -> checked values and the rows they become.

Nothing here touches the database. A record that cannot be read is not an error for the sink: it
becomes a `sink_rejects` row (with its bytes), so one bad message neither stops nor is lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from ledger.batch import Batch
from projections.decide import DECISION_COLUMNS, Decision
from projections.prices import MAX_USD
from projections.snapshots import KINDS, decision_from_row, digest

_STR_COLUMNS = ("company_id", "user_id", "month", "tier", "rule", "reason", "evidence", "ruleset_version")


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


def message(it: Item) -> dict:
    """The decoded message of an Item that was read (the writer routes unreadable ones to rejects)."""
    if it.msg is None:
        raise ValueError(f"record {it.kafka_partition}:{it.kafka_offset} was not readable: {it.error}")
    return it.msg


def reject_row(it: Item, error: str, batch: Batch) -> dict:
    """The `sink_rejects` row keeping an unreadable record and why."""
    raw = it.raw if it.raw is not None else (orjson.dumps(it.msg) if it.msg is not None else None)
    return {
        "topic": batch.topic,
        "kafka_partition": it.kafka_partition,
        "kafka_offset": it.kafka_offset,
        "error": error,
        "raw": raw.decode("utf-8", "replace") if raw is not None else None,
        "received_at": batch.now,
    }


def provenance(it: Item, batch: Batch) -> dict:
    """The columns saying where a stored message came from and when it arrived."""
    return {
        "received_at": batch.now,
        "batch_id": batch.batch_id,
        "kafka_partition": it.kafka_partition,
        "kafka_offset": it.kafka_offset,
    }


def int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


# Decisions -----------------------------------------------------------------------------------


def decision_of(msg: dict) -> tuple[Decision, bool]:
    """A decision message's published values as a Decision, and whether its digest matches them.

    Raises ValueError on a malformed message. The digest is projections.snapshots.digest of the
    decision read back with projections.snapshots.decision_from_row (price rounded to cents), so
    the sink checks exactly what the emitter fingerprinted.
    """
    try:
        row = {c: msg[c] for c in DECISION_COLUMNS}
        claimed = msg["digest"]
    except KeyError as exc:
        raise ValueError(f"decision message lacks {exc.args[0]}") from None
    for c in _STR_COLUMNS:
        if not isinstance(row[c], str):
            raise ValueError(f"{c} must be a string")
    if not isinstance(row["billable"], bool) or not isinstance(row["charged"], bool):
        raise ValueError("billable and charged must be booleans")
    d = decision_from_row(row, plan=str(msg.get("plan") or ""))
    if abs(d.unit_price_usd) >= MAX_USD:
        raise ValueError(f"unit_price_usd out of range: {row['unit_price_usd']!r}")
    return d, digest(d) == claimed


# Company months ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompanyMonthRecord:
    """A company_month message's values: the close's invoice JSON and its daily MAU series."""

    company_id: str
    month: str
    invoice: dict
    mau: list[tuple[date, int]]
    mau_json: list  # as sent: [[day, mau], ...]
    content_digest: str


def content_digest(invoice: dict, mau: list) -> str:
    """What makes two company_month messages the same version: invoice JSON and MAU series."""
    body = orjson.dumps({"invoice": invoice, "mau": mau}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:16]


def company_month_of(msg: dict) -> CompanyMonthRecord:
    """Raises (KeyError, ValueError, TypeError) on a malformed message."""
    invoice = msg["invoice"]
    company, month = str(msg["company_id"]), str(msg["month"])
    if not isinstance(invoice, dict):
        raise ValueError("invoice must be an object")
    mau_json = msg.get("mau") or []
    mau = [(date.fromisoformat(d), int(n)) for d, n in mau_json]
    return CompanyMonthRecord(company, month, invoice, mau, mau_json, content_digest(invoice, mau_json))


# Partition reports and disputes --------------------------------------------------------------


def partition_report_row(it: Item, batch: Batch) -> dict:
    """The `partition_reports` row of a partition_done message (raises if malformed)."""
    msg = message(it)
    counts = msg.get("counts") or {}
    return {
        "month": str(msg["month"]),
        "partition": int(msg["partition"]),
        "partitions": int(msg["partitions"]),
        "close_id": msg.get("close_id"),
        "companies": int(msg.get("companies") or 0),
        "accounts": int(msg.get("accounts") or 0),
        "checksum": str(msg["checksum"]),
        "events_counted": int_or_none(counts.get("events_counted")),
        "rejected": int_or_none(counts.get("rejected")),
        "duplicates_ignored": int_or_none(counts.get("duplicates_ignored")),
        "late_since_close": int_or_none(counts.get("late_since_close")),
        "counts": orjson.dumps(counts).decode(),
        "emitted_at": msg.get("emitted_at"),
        **provenance(it, batch),
    }


def dispute_row(it: Item, batch: Batch) -> dict:
    """The `disputes` row of a dispute_applied message (raises if malformed)."""
    msg = message(it)
    ticket = msg["ticket"]
    if not isinstance(ticket, str) or not ticket:
        raise ValueError("ticket must be a non-empty string")
    return {
        "ticket": ticket,
        "company_id": str(msg["company_id"]),
        "month": str(msg["month"]),
        "requested_by": msg.get("requested_by"),
        "applied_at": msg.get("applied_at"),
        "changes": orjson.dumps(msg.get("changes") or []).decode(),
        "received_at": batch.now,
        "batch_id": batch.batch_id,
    }
