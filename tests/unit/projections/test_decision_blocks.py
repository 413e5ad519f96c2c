"""A `decision_block` stands for exactly the `decision` messages a close would send one by one."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.decide import Decision
from projections.snapshots import DecisionBlocks, DecisionEncoder, decision_message, expand_block
from tests.unit.projections.test_snapshot_encoder import COMPANY_MONTH_AND_IDS, TEXT, a_decision


@settings(max_examples=200, deadline=None)
@given(st.data(), *COMPANY_MONTH_AND_IDS, st.integers(1, 2000))
def test_blocks_expand_to_the_messages_of_each_decision(data, company, month, close_id, partition, now, limit):
    """Any verdicts, user ids and evidence (quotes, escapes, non-ASCII), any cut into blocks: the
    blocks' messages, in order, are decision_message of each decision, and `add` returns its digest."""
    enc = DecisionEncoder(close_id=close_id, partition=partition, emitted_at=now)
    verdicts = data.draw(st.lists(a_decision(company, month), min_size=1, max_size=4))
    blocks = DecisionBlocks(enc, company, month, limit)
    want = []
    for _ in range(data.draw(st.integers(1, 12))):
        v = data.draw(st.sampled_from(verdicts))
        d = dataclasses.replace(v, user_id=data.draw(TEXT), evidence=data.draw(TEXT))
        in_report = data.draw(st.one_of(st.none(), st.booleans()))
        msg = decision_message(
            d, version=1, in_report=in_report, close_id=close_id, partition=partition, emitted_at=now
        )  # fmt: skip
        assert blocks.add(enc.pieces(v), v, d.user_id, d.evidence, in_report) == msg["digest"]
        want.append(msg)
    values = blocks.done()
    got = [m for value in values for m in expand_block(orjson.loads(value))]
    assert got == want
    assert [list(m) for m in got] == [list(m) for m in want]  # the same fields, in the same order


def test_a_block_holds_each_verdict_once_and_is_cut_near_its_limit():
    enc = DecisionEncoder(close_id="c", partition=0, emitted_at="2026-11-01T00:00:00Z")
    verdict = Decision(
        "acme", "", "2026-10", True, True, "standard", "R1", "active", "", Decimal("4.00"), "2026.11", ""
    )
    blocks = DecisionBlocks(enc, "acme", "2026-10", 4096)
    for i in range(200):
        blocks.add(enc.pieces(verdict), verdict, f"u{i:04d}", '[{"t":"2026-10-01T09:00:00+00:00"}]', True)
    values = blocks.done()
    assert len(values) > 1
    assert all(len(v) < 4096 + 512 for v in values)
    assert all(len(orjson.loads(v)["verdicts"]) == 1 for v in values)
    assert sum(len(orjson.loads(v)["user_id"]) for v in values) == 200
