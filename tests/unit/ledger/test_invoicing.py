"""R11 in the ledger: invoices issued once a month is complete, corrections carried by the next one."""

from __future__ import annotations

import dataclasses
import hashlib
from decimal import Decimal

import pytest

from ledger.connection import read_connection, write_connection
from ledger.invoicing import InvoiceNotIssued, annotate_invoice
from ledger.tables import ensure_schema
from ledger.writer import write_batch
from projections.snapshots import checksum, decision_message
from tests.unit.ledger.closes import MONTH, NEXT, TOPIC, Stream, close_msgs, dec, q


def test_invoice_issued_once_with_lines_and_certificate(db):
    s = Stream()
    decs = [dec("c1", "u1"), dec("c1", "u2"), dec("c1", "u3", price="25.00"), dec("c1", "u4", charged=False)]
    msgs, dones = close_msgs(MONTH, {0: decs})
    r = write_batch(db, s.items(msgs + dones), topic=TOPIC)
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
    r = write_batch(db, s.items(msgs + dones), topic=TOPIC)
    assert r.invoices_issued == 0 and r.stored["snapshot_versions"] == 0 and r.stored["company_month_versions"] == 0
    cert = q(
        db,
        "SELECT complete, events_counted, rejected, duplicates_ignored, decisions, decisions_reported, "
        "checksums_match FROM close_certificates",
    )
    assert cert == [(True, 100, 1, 2, 4, 4, True)]


def test_certificate_checksum_is_the_combined_partition_checksums(db):
    s = Stream()
    parts = {0: [dec("c1", "u1"), dec("c1", "u2")], 1: [dec("c2", "u1", charged=False)]}
    msgs, dones = close_msgs(MONTH, parts)
    write_batch(db, s.items(msgs + dones), topic=TOPIC)
    want = hashlib.sha256("".join(checksum(parts[p]) for p in (0, 1)).encode()).hexdigest()
    assert q(db, "SELECT reported_checksum, sink_checksum FROM close_certificates") == [(want, want)]


def test_late_amendment_becomes_adjustment_on_next_invoice(db):
    s = Stream()
    u1, u2 = dec("c1", "u1"), dec("c1", "u2")
    msgs, dones = close_msgs(MONTH, {0: [u1, u2]})
    write_batch(db, s.items(msgs + dones), topic=TOPIC)
    # late event: u2 was not billable after all; a new account u3 appears too
    u2b = dataclasses.replace(u2, charged=False, billable=False, reason="deactivated", unit_price_usd=Decimal("0.00"))
    u3 = dec("c1", "u3", price="12.50")
    amend = [
        decision_message(u2b, version=2, corrects_version=1, amend_reason="late_event", partition=0),
        decision_message(u3, version=1, amend_reason="late_event", partition=0),
    ]
    r = write_batch(db, s.items(amend), topic=TOPIC)
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
    r = write_batch(db, s.items(msgs2 + dones2), topic=TOPIC)
    assert r.adjustments_applied == 2
    assert q(db, "SELECT subtotal_usd, adjustments_usd, total_usd FROM invoices WHERE month = ?", NEXT) == [
        (Decimal("22.50"), Decimal("2.50"), Decimal("25.00"))
    ]
    assert q(db, "SELECT DISTINCT applied_to_invoice_month FROM invoice_adjustments") == [(NEXT,)]
    # later corrections of either month wait for the invoice after that
    r = write_batch(
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
    write_batch(db, s.items(msgs + [amend] + dones), topic=TOPIC)
    assert q(db, "SELECT subtotal_usd, matches_close FROM invoices") == [(Decimal("10.00"), False)]
    assert q(db, "SELECT count(*) FROM invoice_adjustments") == [(0,)]


def test_adjustments_do_not_attach_to_an_earlier_month(db):
    s = Stream()
    msgs, dones = close_msgs(NEXT, {0: [dec("c1", "u1", NEXT)]})
    write_batch(db, s.items(msgs + dones), topic=TOPIC)
    write_batch(
        db,
        s.items([decision_message(dec("c1", "u1", NEXT, price="11.00"), version=2, amend_reason="late_event")]),
        topic=TOPIC,
    )
    # an older month closes afterwards (e.g. a replayed close): it must not carry April's correction
    msgs2, dones2 = close_msgs(MONTH, {0: [dec("c1", "u1", MONTH)]}, close_id="c-old")
    write_batch(db, s.items(msgs2 + dones2), topic=TOPIC)
    assert q(db, "SELECT adjustments_usd FROM invoices WHERE month = ?", MONTH) == [(Decimal("0.00"),)]
    assert q(db, "SELECT applied_to_invoice_month FROM invoice_adjustments") == [(None,)]


def test_annotation_on_issued_invoice_only(tmp_path):
    path = tmp_path / "a.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
        msgs, dones = close_msgs(MONTH, {0: [dec("c1")]})
        write_batch(con, Stream().items(msgs + dones), topic=TOPIC)
    with pytest.raises(InvoiceNotIssued):
        annotate_invoice(path, "c1", NEXT, "PO-9")
    annotate_invoice(path, "c1", MONTH, "PO-9", annotated_by="admin")
    with read_connection(path) as con:
        assert q(con, "SELECT company_id, month, po_number, annotated_by FROM invoice_annotations") == [
            ("c1", MONTH, "PO-9", "admin")
        ]
        assert q(con, "SELECT po_number FROM invoices") == [("PO-1",)]  # the invoice itself unchanged
