"""Snapshot-topic records in: Kafka values to Items, and decision messages checked with the one
serializer (projections.snapshots)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
import pytest

from ledger.records import company_month_of, content_digest, decision_of, parse_record
from projections.snapshots import company_month_message, decision_from_row, decision_message, digest
from tests.unit.ledger.closes import MONTH, dec, invoice_json


def test_packed_record_yields_several_items():
    ms = [decision_message(dec(user=f"u{i}"), version=1) for i in range(3)]
    items = parse_record(2, 7, orjson.dumps(ms))
    assert [(i.kafka_partition, i.kafka_offset, i.index) for i in items] == [(2, 7, 0), (2, 7, 1), (2, 7, 2)]


def test_unreadable_records_are_items_with_an_error_and_their_bytes():
    empty, not_json = parse_record(0, 1, None), parse_record(0, 2, b"{nope")
    assert (empty[0].msg, empty[0].error, empty[0].raw) == (None, "empty record (no value)", None)
    assert not_json[0].error.startswith("not JSON") and not_json[0].raw == b"{nope"
    mixed = parse_record(0, 3, orjson.dumps([5, {"kind": "nope"}, decision_message(dec(), version=1)]))
    assert [(i.index, i.error) for i in mixed] == [
        (0, "element 0 is not a JSON object"),
        (1, "unknown kind 'nope'"),
        (2, None),
    ]
    assert mixed[0].raw == b"5" and mixed[2].msg is not None and mixed[2].msg["kind"] == "decision"


def test_decision_is_read_back_with_the_snapshot_serializer():
    d = dec(price="12.50")
    msg = decision_message(d, version=1, partition=0)
    got, digest_ok = decision_of(msg)
    assert (got, digest_ok) == (d, True)
    assert got == decision_from_row(msg, plan=msg["plan"]) and digest(got) == msg["digest"]


def test_price_is_checked_in_cents_like_the_emitter_fingerprinted_it():
    msg = decision_message(dec(price="7.00"), version=1)
    msg["unit_price_usd"] = 7  # a JSON number instead of "7.00": the same published value
    got, digest_ok = decision_of(msg)
    assert got.unit_price_usd == Decimal("7.00") and str(got.unit_price_usd) == "7.00" and digest_ok


def test_tampered_values_fail_the_digest_check():
    msg = decision_message(dec(), version=1)
    msg["reason"] = "something_else"
    assert decision_of(msg)[1] is False


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"tier": None}, "tier must be a string"),
        ({"charged": 1}, "billable and charged must be booleans"),
        ({"unit_price_usd": "1e10"}, "unit_price_usd out of range"),
    ],
)
def test_malformed_decisions_are_refused(change, error):
    with pytest.raises(ValueError, match=error):
        decision_of(decision_message(dec(), version=1) | change)


def test_a_decision_without_its_digest_is_refused():
    msg = decision_message(dec(), version=1)
    del msg["digest"]
    with pytest.raises(ValueError, match="lacks digest"):
        decision_of(msg)


def test_company_month_record_and_its_content_digest():
    inv = invoice_json("c1", MONTH, [dec()])
    msg = company_month_message(inv, [(date(2026, 3, 1), 4)], partition=0)
    cm = company_month_of(msg)
    assert (cm.company_id, cm.month, cm.invoice, cm.mau) == ("c1", MONTH, inv, [(date(2026, 3, 1), 4)])
    assert cm.content_digest == content_digest(inv, [["2026-03-01", 4]])
    with pytest.raises(ValueError, match="invoice must be an object"):
        company_month_of(msg | {"invoice": "x"})
