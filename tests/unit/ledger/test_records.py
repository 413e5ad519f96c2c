"""Snapshot-topic records in: Kafka values to Items, and decision messages checked with the one
serializer (projections.snapshots)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.records import (
    EVIDENCE_FORM,
    _checked_decision_values,
    _evidence_ok,
    block_columns,
    company_month_of,
    content_digest,
    decision_of,
    evidence_column_ok,
    expanded,
    parse_record,
    plain_decision,
    shape_problem,
)
from projections.snapshots import (
    DecisionBlocks,
    DecisionEncoder,
    company_month_message,
    decision_from_row,
    decision_message,
    digest,
)
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


# Hostile snapshot messages (issue 10): refused before the transaction, with the field named -------


def _cm() -> dict:
    inv = {"company_id": "c", "month": "2026-10", "plan": "premium", "lines": [], "notices": [], "subtotal_usd": "0.00"}
    return company_month_message(inv, [], version=1)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"version": 2**40}, "version must be an integer from -2147483648 to 2147483647"),
        ({"partition": "3"}, "partition must be an integer from -2147483648 to 2147483647"),
        ({"in_report": "yes"}, "in_report must be true or false"),
        ({"amend_reason": {"a": 1}}, "amend_reason must be a string"),
        ({"digest": None}, "digest must be a string"),
        ({"month": "9999-12"}, "month: month '9999-12' is outside the supported range 2000-01 .. 2099-12"),
        ({"kind": ["decision"]}, "unknown kind"),
    ],
)
def test_a_decision_with_a_value_its_column_cannot_hold_is_unreadable(change, error):
    item = parse_record(0, 7, orjson.dumps(decision_message(dec(), version=1) | change))[0]
    assert (item.msg, item.error) == (None, error)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"mau": [["2026-10-01", "many"]]}, "mau[0] must be [YYYY-MM-DD, count]"),
        ({"mau": [["yesterday", 1]]}, "mau[0] must be [YYYY-MM-DD, count]"),
        ({"invoice": []}, "invoice must be an object"),
        ({"invoice": {"lines": [{"plan": "p", "tier": "t", "count": 1, "unit_price_usd": "NaN"}]}},
         "invoice.lines[0].unit_price_usd must be an amount below 10,000,000,000 (a string such as '4.00')"),
        ({"invoice": {"notices": [1]}}, "invoice.notices must be strings"),
        ({"invoice": {"po_number": ["x"]}}, "invoice.po_number must be a string"),
    ],
)  # fmt: skip
def test_a_company_month_with_a_malformed_invoice_is_unreadable(change, error):
    item = parse_record(0, 7, orjson.dumps(_cm() | change))[0]
    assert (item.msg, item.error) == (None, error)


def test_a_deep_or_evidence_less_decision_is_unreadable_and_nothing_raises():
    deep = orjson.dumps(decision_message(dec(), version=1))[:-1] + b',"x":' + b'{"a":' * 300 + b"1" + b"}" * 300 + b"}"
    item = parse_record(0, 1, deep)[0]
    assert item.error == "nests more than 32 levels" and item.raw == deep  # too deep to encode again: the record
    msg = decision_message(dec(), version=1) | {"evidence": "not json"}
    with pytest.raises(ValueError, match="evidence must be a JSON array of objects"):
        decision_of(msg)


_ODD_VALUES = st.sampled_from(
    [None, 0, 7, 7.5, 2**40, True, False, "", "x", "4.00", "7", "1e10", "-3.999", "NaN", "sNaN", "abc",
     "[]", '[{"a": 1}]', "[1]", "{}", "not json", "2026-10", "9999-12", [], [1], {}, {"a": [1]}]
)  # fmt: skip
_FIELDS = st.sampled_from(
    ["company_id", "user_id", "month", "billable", "charged", "tier", "rule", "reason", "evidence",
     "unit_price_usd", "ruleset_version", "plan", "digest", "version", "partition", "amend_reason",
     "in_report", "close_id", "emitted_at", "kind", "extra"]
)  # fmt: skip


def _outcome(f, *args):
    try:
        return ("ok", f(*args))
    except Exception as exc:
        return ("raises", type(exc), str(exc))


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(_FIELDS, _ODD_VALUES, max_size=3), drop=st.lists(_FIELDS, max_size=2))
def test_the_one_pass_decision_checks_agree_with_the_field_by_field_ones(changes, drop):
    msg = decision_message(dec(price="12.50"), version=1, partition=2, close_id="c") | changes
    for name in drop:
        msg.pop(name, None)
    if plain_decision(msg):  # accepted in one pass: the full checks find nothing either
        assert shape_problem(msg) is None
    want = _outcome(_checked_decision_values, msg)
    if want[0] == "ok":
        want = _outcome(lambda m: (want[1], digest(want[1]) == m["digest"]), msg)
    assert _outcome(decision_of, msg) == want


def _block(n: int = 3) -> dict:
    enc = DecisionEncoder(close_id="k", partition=1, emitted_at="2026-04-01T00:00:00Z")
    blocks = DecisionBlocks(enc, "c1", MONTH, 1 << 20)
    for i in range(n):
        d = dec(user=f"u{i}", charged=i % 2 == 0)
        blocks.add(enc.pieces(d), d, d.user_id, d.evidence, i % 2 == 0)
    (value,) = blocks.done()
    return orjson.loads(value)


def test_a_decision_block_is_one_item_standing_for_its_accounts():
    (item,) = parse_record(0, 7, orjson.dumps(_block(3)))
    assert (item.error, item.count, item.msg["kind"]) == (None, 3, "decision_block")
    (msgs,) = [[it.msg for it in expanded([item])]]
    assert [m["user_id"] for m in msgs] == ["u0", "u1", "u2"]
    assert [decision_of(m)[1] for m in msgs] == [True] * 3  # each digest matches its values


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"user_id": ["u0", "u1"]}, "user_id has 2 values, verdict has 3"),
        ({"verdict": [0, 0, 5]}, "verdict must hold indices into verdicts (0 to 1)"),
        ({"verdict": [0, -1, 0]}, "verdict must hold indices into verdicts (0 to 1)"),
        ({"verdict": [0, True, 0]}, "verdict must hold indices into verdicts (0 to 1)"),
        ({"verdicts": [[], {}]}, "verdicts must be an array of objects"),
        ({"verdicts": []}, "verdicts must be an array of objects"),
        ({"evidence": "[]"}, "evidence must be an array"),
        ({"verdict": [], "user_id": [], "evidence": [], "in_report": [], "digest": []}, "has no accounts"),
        ({"partition": "1"}, "partition must be an integer from -2147483648 to 2147483647"),
        ({"month": "2026-13"}, "month: invalid month '2026-13'; expected YYYY-MM"),
    ],
)
def test_a_malformed_decision_block_is_one_unreadable_item(change, error):
    (item,) = parse_record(0, 7, orjson.dumps(_block(3) | change))
    assert (item.msg, item.error) == (None, error)


def test_a_bad_account_in_a_block_is_refused_alone_when_expanded():
    block = _block(3)
    block["evidence"][1] = "{}"
    block["user_id"][2] = ["nested"]
    (item,) = parse_record(0, 7, orjson.dumps(block))
    assert block_columns([item.msg], DecisionEncoder()) is None  # the columnar path declines
    first, second, third = expanded([item])
    assert (first.error, decision_of(first.msg)[1]) == (None, True)
    with pytest.raises(ValueError, match="evidence must be a JSON array of objects"):
        decision_of(second.msg)
    with pytest.raises(ValueError, match="user_id must be a string"):
        decision_of(third.msg)


def test_a_decision_block_nesting_too_deep_anywhere_is_unreadable():
    deep: list = []
    for _ in range(40):
        deep = [deep]
    for change in ({"user_id": ["u0", deep, "u2"]}, {"verdicts": [{"tier": deep}, {}]}, {"extra": deep}):
        (item,) = parse_record(0, 7, orjson.dumps(_block(3) | change))
        assert (item.msg, item.error) == (None, "nests more than 32 levels")


# The evidence check by column: the regex of a close's evidence form spares the parse, the parse decides.
_HOSTILE = st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\n", "\u2028", "\u2029", "é", "😀", "\ufeff", "a", " "])
_TOKENS = st.sampled_from(
    ["[", "]", "{", "}", '"', ":", ",", "\\", '\\"', "\\u0041", "\\ud800", "a", "1", "NaN", "null", " ", "\x00",
     "\u2028", "😀", '"a"', '"a":"b"', "[]", "{}"]
)  # fmt: skip
_VALUES = st.one_of(st.text(_HOSTILE, max_size=6), st.text(max_size=6), st.integers(-(2**63), 2**64 - 1), st.none())
_VALID = st.lists(st.dictionaries(st.text(_HOSTILE, max_size=4), _VALUES, max_size=3), max_size=3).map(
    lambda ev: orjson.dumps(ev).decode()
)
# the characters written between the quotes as they are, not escaped: valid JSON or not
_RAW = st.lists(st.tuples(st.text(_HOSTILE, max_size=3), st.text(_HOSTILE, max_size=3)), max_size=2).map(
    lambda pairs: "[{" + ",".join(f'"{k}":"{v}"' for k, v in pairs) + "}]"
)
_TEXTS = st.one_of(_VALID, _RAW, st.lists(_TOKENS, max_size=12).map("".join), st.text(max_size=12))


@settings(max_examples=600, deadline=None)
@given(text=_TEXTS)
def test_a_text_of_the_evidence_form_is_evidence_the_parser_accepts(text):
    """Hostile characters (quotes, backslashes, control characters, U+2028, emoji) and near-JSON
    tokens: whatever the regex lets through, `_evidence_ok` (orjson) accepts too."""
    if pc.match_substring_regex(pa.array([text]), EVIDENCE_FORM)[0].as_py():
        assert _evidence_ok(text)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_TEXTS, max_size=6))
def test_the_evidence_column_check_is_the_parsers_verdict_on_every_text(texts):
    assert evidence_column_ok(pa.array(texts, pa.string())) == all(map(_evidence_ok, texts))


def test_close_evidence_takes_the_regex_and_the_rest_the_parser():
    close = '[{"event_id":"e1","type":"login","occurred_at":"2026-03-02T10:00:00+01:00"},{}]'
    fits = pc.match_substring_regex(pa.array([close, "[]", '[{"a":"\\u00e9"}]', '[{"a":1}]']), EVIDENCE_FORM)
    assert fits.to_pylist() == [True, True, False, False]
    assert evidence_column_ok(pa.array(['[{"a":"\\u00e9"}]', '[{"a":1}]', "[ {} ]"]))  # parsed: valid
    for bad in ("[{}", "[{},]", '[{"a":NaN}]', "[1]", "{}", '[{"a":"\\"}]', '[{"a":"\x01"}]'):
        assert not evidence_column_ok(pa.array([close, bad]))
