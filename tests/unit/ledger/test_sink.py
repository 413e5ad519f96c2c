"""The sink's DuckDB logic, without Kafka: a real DuckDB file in tmp, batches of snapshot messages."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from decimal import Decimal

import duckdb
import orjson
import pytest

from ledger import sink
from projections.decide import DECISION_COLUMNS, Decision
from projections.snapshots import (
    checksum,
    company_month_message,
    decision_message,
    encode,
    partition_done_message,
)

MONTH = "2026-03"
NEXT = "2026-04"
TOPIC = "snap"


def dec(company="c1", user="u1", month=MONTH, charged=True, price="10.00", reason="active_full_month", plan="pro"):
    return Decision(
        company,
        user,
        month,
        charged,
        charged,
        "full",
        "R2",
        reason if charged else "no_billing_activity",
        "[]",
        Decimal(price) if charged else Decimal("0.00"),
        "2026.1",
        plan,
    )


def invoice_json(company, month, decisions, po="PO-1"):
    lines = {}
    for d in decisions:
        if d.charged:
            k = (d.plan, d.tier, str(d.unit_price_usd))
            lines[k] = lines.get(k, 0) + 1
    sub = sum((Decimal(p) * n for (_, _, p), n in lines.items()), Decimal("0.00"))
    return {
        "company_id": company,
        "month": month,
        "plan": "pro",
        "lines": [
            {"plan": a, "tier": b, "count": n, "unit_price_usd": p, "amount_usd": str(Decimal(p) * n)}
            for (a, b, p), n in sorted(lines.items())
        ],
        "billable_accounts": sum(d.billable for d in decisions),
        "charged_accounts": sum(d.charged for d in decisions),
        "free_reason": None,
        "subtotal_usd": str(sub),
        "adjustments": [],
        "total_usd": str(sub),
        "currency": "USD",
        "taxes": "excluded",
        "po_number": po,
        "payment_method": "card",
        "card_brand": "visa",
        "billing_country": "NL",
        "qualifies_for_invoice_payment": False,
        "notices": [],
    }


class Stream:
    """Builds Items with increasing offsets on one Kafka partition (or several)."""

    def __init__(self):
        self.next = {}

    def items(self, msgs, kp=0):
        out = []
        for m in msgs:
            off = self.next.get(kp, 0)
            self.next[kp] = off + 1
            out.extend(sink.parse_record(kp, off, encode(m)))
        return out


def close_msgs(month, decisions_by_partition: dict[int, list[Decision]], partitions=None, close_id="close-1"):
    """Everything a close emits: decisions, company_months, then partition_done per partition."""
    partitions = partitions or len(decisions_by_partition)
    msgs, dones = [], []
    for p, decs in sorted(decisions_by_partition.items()):
        companies = sorted({d.company_id for d in decs})
        for d in decs:
            msgs.append(decision_message(d, version=1, in_report=True, close_id=close_id, partition=p))
        for c in companies:
            cd = [d for d in decs if d.company_id == c]
            msgs.append(company_month_message(invoice_json(c, month, cd), [], close_id=close_id, partition=p))
        dones.append(
            partition_done_message(
                month,
                p,
                partitions,
                close_id=close_id,
                companies=len(companies),
                accounts=len(decs),
                checksum_=checksum(decs),
                counts={"events_counted": 100, "rejected": 1, "duplicates_ignored": 2, "late_since_close": 0},
            )
        )
    return msgs, dones


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "sink.duckdb"
    con = duckdb.connect(str(path))
    sink.ensure_schema(con)
    yield con
    con.close()


def q(con, sql, *args):
    return con.execute(sql, list(args)).fetchall()


def test_views_have_exactly_the_decision_columns(db):
    cols = tuple(r[0] for r in db.execute("DESCRIBE account_decisions").fetchall())
    assert cols == DECISION_COLUMNS
    types = {r[0]: r[1] for r in db.execute("DESCRIBE account_decisions").fetchall()}
    assert types["unit_price_usd"] == "DECIMAL(12,2)"
    assert types["billable"] == types["charged"] == "BOOLEAN"
    assert types["evidence"] == "VARCHAR"
    assert tuple(r[0] for r in db.execute("DESCRIBE billable_users").fetchall()) == DECISION_COLUMNS


def test_schema_is_idempotent(db):
    sink.ensure_schema(db)
    sink.ensure_schema(db)


def test_versions_dedup_and_amendments(db):
    s = Stream()
    d1 = dec()
    m1 = decision_message(d1, version=1, partition=0)
    r = sink.write_batch(db, s.items([m1, m1]), topic=TOPIC)  # redelivery within a batch
    assert r.stored["snapshot_versions"] == 1 and r.duplicates["decision"] == 1
    r = sink.write_batch(db, s.items([m1]), topic=TOPIC)  # redelivery in a later batch
    assert r.rows_written == 0 and r.duplicates["decision"] == 1
    d2 = dataclasses.replace(d1, charged=False, billable=False, reason="deactivated", unit_price_usd=Decimal("0.00"))
    sink.write_batch(
        db, s.items([decision_message(d2, version=2, corrects_version=1, amend_reason="late_event")]), topic=TOPIC
    )
    # the dispute tool's amendment also says "version 2": the sink numbers it 3
    d3 = dataclasses.replace(d1, reason="restored")
    sink.write_batch(
        db, s.items([decision_message(d3, version=2, corrects_version=1, amend_reason="dispute:T-9")]), topic=TOPIC
    )
    rows = q(
        db,
        "SELECT version, corrects_version, amend_reason, emitted_version, charged FROM snapshot_versions "
        "ORDER BY version",
    )
    assert rows == [(1, None, None, 1, True), (2, 1, "late_event", 2, False), (3, 2, "dispute:T-9", 2, True)]
    assert q(db, "SELECT topic, partition, next_offset FROM sink_offsets") == [(TOPIC, 0, 5)]


def test_records_below_stored_position_are_not_written_twice(db):
    s = Stream()
    items = s.items([decision_message(dec(user=f"u{i}"), version=1) for i in range(5)])
    sink.write_batch(db, items[:3], topic=TOPIC)
    r = sink.write_batch(db, items, topic=TOPIC)  # a restart that re-read from an older position
    assert r.already_written == 3 and r.stored["snapshot_versions"] == 2
    assert q(db, "SELECT count(*) FROM snapshot_versions") == [(5,)]
    assert sink.read_positions(db, TOPIC) == {0: 5}


def test_half_written_month_is_invisible(db):
    s = Stream()
    p0 = [dec("c1", f"u{i}") for i in range(3)]
    p1 = [dec("c2", f"u{i}", charged=i % 2 == 0) for i in range(4)]
    msgs, dones = close_msgs(MONTH, {0: p0, 1: p1})
    # partition 1's report arrives (on another topic partition) before all of its decisions
    first = [m for m in msgs if m.get("partition") == 0] + [m for m in msgs if m.get("partition") == 1][:2]
    rest = [m for m in msgs if m.get("partition") == 1][2:]
    sink.write_batch(db, s.items(first) + s.items(dones, kp=1), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(0,)]
    assert q(db, "SELECT partitions_reported, partitions_expected, complete FROM month_closes") == [(2, 2, False)]
    assert q(db, "SELECT count(*) FROM invoices") == [(0,)]
    r = sink.write_batch(db, s.items(rest), topic=TOPIC)
    assert r.months_completed == [MONTH]
    assert q(db, "SELECT count(*) FROM account_decisions") == [(7,)]
    assert q(db, "SELECT count(*) FROM billable_users") == [(5,)]
    assert q(db, "SELECT complete FROM month_closes") == [(True,)]
    assert sink.read_positions(db, TOPIC) == {0: len(msgs), 1: 2}


def test_one_report_missing_keeps_the_month_hidden(db):
    s = Stream()
    msgs, dones = close_msgs(MONTH, {0: [dec("c1")], 1: [dec("c2")]})
    sink.write_batch(db, s.items(msgs + dones[:1]), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(0,)]
    sink.write_batch(db, s.items(dones[1:]), topic=TOPIC)
    assert q(db, "SELECT count(*) FROM account_decisions") == [(2,)]


def test_invoice_issued_once_with_lines_and_certificate(db):
    s = Stream()
    decs = [dec("c1", "u1"), dec("c1", "u2"), dec("c1", "u3", price="25.00"), dec("c1", "u4", charged=False)]
    msgs, dones = close_msgs(MONTH, {0: decs})
    r = sink.write_batch(db, s.items(msgs + dones), topic=TOPIC)
    assert r.invoices_issued == 1
    inv = q(
        db,
        "SELECT billable_accounts, charged_accounts, subtotal_usd, adjustments_usd, total_usd, po_number, "
        "matches_close, qualifies_for_invoice_payment FROM invoices",
    )
    assert inv == [(3, 3, Decimal("45.00"), Decimal("0.00"), Decimal("45.00"), "PO-1", True, False)]
    assert q(
        db, "SELECT line_no, plan, tier, count, unit_price_usd, amount_usd FROM invoice_lines ORDER BY line_no"
    ) == [
        (1, "pro", "full", 2, Decimal("10.00"), Decimal("20.00")),
        (2, "pro", "full", 1, Decimal("25.00"), Decimal("25.00")),
    ]
    # the same close delivered again: nothing new, invoice not re-issued
    r = sink.write_batch(db, s.items(msgs + dones), topic=TOPIC)
    assert r.invoices_issued == 0 and r.stored["snapshot_versions"] == 0 and r.stored["company_month_versions"] == 0
    cert = q(
        db,
        "SELECT complete, events_counted, rejected, duplicates_ignored, decisions, decisions_reported, "
        "checksums_match FROM close_certificates",
    )
    assert cert == [(True, 100, 1, 2, 4, 4, True)]


def test_certificate_checksum_is_the_combined_partition_checksums(db):
    import hashlib

    s = Stream()
    parts = {0: [dec("c1", "u1"), dec("c1", "u2")], 1: [dec("c2", "u1", charged=False)]}
    msgs, dones = close_msgs(MONTH, parts)
    sink.write_batch(db, s.items(msgs + dones), topic=TOPIC)
    want = hashlib.sha256("".join(checksum(parts[p]) for p in (0, 1)).encode()).hexdigest()
    assert q(db, "SELECT reported_checksum, sink_checksum FROM close_certificates") == [(want, want)]


def test_late_amendment_becomes_adjustment_on_next_invoice(db):
    s = Stream()
    u1, u2 = dec("c1", "u1"), dec("c1", "u2")
    msgs, dones = close_msgs(MONTH, {0: [u1, u2]})
    sink.write_batch(db, s.items(msgs + dones), topic=TOPIC)
    # late event: u2 was not billable after all; a new account u3 appears too
    u2b = dataclasses.replace(u2, charged=False, billable=False, reason="deactivated", unit_price_usd=Decimal("0.00"))
    u3 = dec("c1", "u3", price="12.50")
    amend = [
        decision_message(u2b, version=2, corrects_version=1, amend_reason="late_event", partition=0),
        decision_message(u3, version=1, amend_reason="late_event", partition=0),
    ]
    r = sink.write_batch(db, s.items(amend), topic=TOPIC)
    assert r.adjustments_created == 2
    # the issued invoice did not change
    assert q(db, "SELECT total_usd FROM invoices WHERE month = ?", MONTH) == [(Decimal("20.00"),)]
    # the month shows the correction (a single-row change, never half a month)
    assert q(db, "SELECT charged FROM account_decisions WHERE user_id = 'u2'") == [(False,)]
    pend = q(
        db,
        "SELECT user_id, corrects_version, new_version, reason, amount_usd, applied_to_invoice_month "
        "FROM invoice_adjustments ORDER BY user_id",
    )
    assert pend == [
        ("u2", 1, 2, "late_event", Decimal("-10.00"), None),
        ("u3", None, 1, "late_event", Decimal("12.50"), None),
    ]
    # next month's close issues the next invoice, which carries the adjustments
    msgs2, dones2 = close_msgs(
        NEXT, {0: [dec("c1", "u1", NEXT), dec("c1", "u3", NEXT, price="12.50")]}, close_id="close-2"
    )
    r = sink.write_batch(db, s.items(msgs2 + dones2), topic=TOPIC)
    assert r.adjustments_applied == 2
    assert q(db, "SELECT subtotal_usd, adjustments_usd, total_usd FROM invoices WHERE month = ?", NEXT) == [
        (Decimal("22.50"), Decimal("2.50"), Decimal("25.00"))
    ]
    assert q(db, "SELECT DISTINCT applied_to_invoice_month FROM invoice_adjustments") == [(NEXT,)]
    # later corrections of either month wait for the invoice after that
    r = sink.write_batch(
        db,
        s.items([decision_message(dataclasses.replace(u1, reason="x"), version=2, amend_reason="dispute:T-1")]),
        topic=TOPIC,
    )
    assert q(db, "SELECT count(*) FROM invoice_adjustments WHERE applied_to_invoice_month IS NULL") == [(1,)]


def test_correction_before_issue_is_on_the_invoice_not_an_adjustment(db):
    s = Stream()
    u1, u2 = dec("c1", "u1"), dec("c1", "u2")
    msgs, dones = close_msgs(MONTH, {0: [u1, u2]})
    u2b = dataclasses.replace(u2, charged=False, billable=False, reason="deactivated", unit_price_usd=Decimal("0.00"))
    amend = decision_message(u2b, version=2, corrects_version=1, amend_reason="late_event", partition=0)
    sink.write_batch(db, s.items(msgs + [amend] + dones), topic=TOPIC)
    assert q(db, "SELECT subtotal_usd, matches_close FROM invoices") == [(Decimal("10.00"), False)]
    assert q(db, "SELECT count(*) FROM invoice_adjustments") == [(0,)]


def test_adjustments_do_not_attach_to_an_earlier_month(db):
    s = Stream()
    msgs, dones = close_msgs(NEXT, {0: [dec("c1", "u1", NEXT)]})
    sink.write_batch(db, s.items(msgs + dones), topic=TOPIC)
    sink.write_batch(
        db,
        s.items([decision_message(dec("c1", "u1", NEXT, price="11.00"), version=2, amend_reason="late_event")]),
        topic=TOPIC,
    )
    # an older month closes afterwards (e.g. a replayed close): it must not carry April's correction
    msgs2, dones2 = close_msgs(MONTH, {0: [dec("c1", "u1", MONTH)]}, close_id="c-old")
    sink.write_batch(db, s.items(msgs2 + dones2), topic=TOPIC)
    assert q(db, "SELECT adjustments_usd FROM invoices WHERE month = ?", MONTH) == [(Decimal("0.00"),)]
    assert q(db, "SELECT applied_to_invoice_month FROM invoice_adjustments") == [(None,)]


def test_company_month_versions_mau_and_reconciliation(db):
    s = Stream()
    d_in, d_out = dec("c1", "u1"), dec("c1", "u2", charged=False)
    cm = company_month_message(
        invoice_json("c1", MONTH, [d_in, d_out]),
        [(__import__("datetime").date(2026, 3, 1), 5), (__import__("datetime").date(2026, 3, 2), 6)],
        partition=0,
    )
    msgs = [
        decision_message(d_in, version=1, in_report=False, partition=0),
        decision_message(d_out, version=1, in_report=True, partition=0),
        cm,
        cm,
    ]
    done = partition_done_message(
        MONTH, 0, 1, close_id="x", companies=1, accounts=2, checksum_=checksum([d_in, d_out]), counts={}
    )
    r = sink.write_batch(db, s.items(msgs + [done]), topic=TOPIC)
    assert r.duplicates["company_month"] == 1
    assert q(db, "SELECT day::VARCHAR, mau FROM mau_daily ORDER BY day") == [("2026-03-01", 5), ("2026-03-02", 6)]
    assert q(db, "SELECT user_id, explanation FROM reconciliation ORDER BY user_id") == [
        ("u1", "invoice_only:active_full_month"),
        ("u2", "report_only:no_billing_activity"),
    ]


def test_disputes_stored_once_per_ticket(db):
    s = Stream()
    m = sink.dispute_applied_message(
        "T-1",
        "c1",
        MONTH,
        requested_by="ann",
        applied_at="2026-04-02T10:00:00Z",
        changes=[{"user_id": "u1", "to_version": 2}],
    )
    r = sink.write_batch(db, s.items([m, m]), topic=TOPIC)
    r2 = sink.write_batch(db, s.items([m]), topic=TOPIC)
    assert r.stored["disputes"] == 1 and r.duplicates["dispute_applied"] == 1 and r2.duplicates["dispute_applied"] == 1
    assert orjson.loads(q(db, "SELECT changes FROM disputes")[0][0]) == [{"user_id": "u1", "to_version": 2}]


def test_bad_records_are_kept_not_fatal(db):
    items = sink.parse_record(0, 0, b"not json") + sink.parse_record(0, 1, b'{"kind": "nope"}')
    items += sink.parse_record(0, 2, orjson.dumps({"kind": "decision", "company_id": "c1"}))
    items += sink.parse_record(0, 3, b"[" + encode(decision_message(dec(), version=1)) + b", 5]")
    r = sink.write_batch(db, items, topic=TOPIC)
    assert r.rejects == 4 and r.stored["snapshot_versions"] == 1
    assert sink.read_positions(db, TOPIC) == {0: 4}


def test_packed_record_yields_several_items():
    ms = [decision_message(dec(user=f"u{i}"), version=1) for i in range(3)]
    items = sink.parse_record(2, 7, orjson.dumps(ms))
    assert [(i.kafka_partition, i.kafka_offset, i.index) for i in items] == [(2, 7, 0), (2, 7, 1), (2, 7, 2)]


def test_tampered_digest_is_counted(db):
    m = decision_message(dec(), version=1)
    m["charged"] = False
    r = sink.write_batch(db, sink.parse_record(0, 0, encode(m)), topic=TOPIC)
    assert r.digest_mismatches == 1


def test_annotation_on_issued_invoice_only(tmp_path):
    path = tmp_path / "a.duckdb"
    with sink.write_connection(path) as con:
        sink.ensure_schema(con)
        msgs, dones = close_msgs(MONTH, {0: [dec("c1")]})
        sink.write_batch(con, Stream().items(msgs + dones), topic=TOPIC)
    with pytest.raises(sink.InvoiceNotIssued):
        sink.annotate_invoice(path, "c1", NEXT, "PO-9")
    sink.annotate_invoice(path, "c1", MONTH, "PO-9", annotated_by="admin")
    with sink.read_connection(path) as con:
        assert q(con, "SELECT company_id, month, po_number, annotated_by FROM invoice_annotations") == [
            ("c1", MONTH, "PO-9", "admin")
        ]
        assert q(con, "SELECT po_number FROM invoices") == [("PO-1",)]  # the invoice itself unchanged


def _hold_open(path, seconds, ready):
    con = duckdb.connect(str(path), read_only=True)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_connect_waits_for_a_reader_in_another_process(tmp_path):
    path = tmp_path / "l.duckdb"
    with sink.write_connection(path) as con:
        sink.ensure_schema(con)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_open, args=(path, 1.0, ready))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(sink.DatabaseBusy):
            sink.connect(path, timeout=0.1)
        waits = []
        t0 = time.monotonic()
        con = sink.connect(path, timeout=10, on_wait=waits.append)
        con.close()
        assert 0.3 < time.monotonic() - t0 < 5 and waits
    finally:
        p.join(10)
