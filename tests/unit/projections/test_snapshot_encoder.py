"""`DecisionEncoder` gives the bytes and digest of `decision_message`, whatever the values."""

from __future__ import annotations

import dataclasses
import hashlib
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.decide import Decision
from projections.snapshots import DecisionEncoder, checksum_of_digests, decision_message, digest

TEXT = st.text(max_size=12)  # any characters: quotes, backslashes, controls, non-ASCII
# an encoder's company and month, and its close id, partition and emission time
COMPANY_MONTH_AND_IDS = (
    TEXT,
    st.sampled_from(["2026-10", "2026-09"]),
    TEXT,
    st.one_of(st.none(), st.integers(0, 2**31 - 1)),
    st.one_of(st.none(), TEXT),
)


@st.composite
def a_decision(draw, company: str, month: str):
    return Decision(
        company, draw(TEXT), month, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from(["standard", "frontline"])),
        draw(st.sampled_from(["R1", "R2", "R8"])), draw(TEXT), draw(TEXT),
        draw(st.sampled_from([Decimal("0"), Decimal("0.00"), Decimal("4.00"), Decimal("12.5")])),
        draw(st.sampled_from(["2026.11", "2026.10"])), draw(st.sampled_from(["", "premium", "advanced"])),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.data(), *COMPANY_MONTH_AND_IDS)
def test_encoded_decision_equals_decision_message_and_its_digest(data, company, month, close_id, partition, now):
    enc = DecisionEncoder(close_id=close_id, partition=partition, emitted_at=now)
    for _ in range(4):  # several decisions through one encoder: shared pieces are reused
        d = data.draw(a_decision(company, month))
        version = data.draw(st.integers(1, 2**31 - 1))
        corrects = data.draw(st.one_of(st.none(), st.integers(1, 2**31 - 1)))
        reason = data.draw(st.one_of(st.none(), TEXT))
        in_report = data.draw(st.one_of(st.none(), st.booleans()))
        raw, dg = enc.encode(d, version=version, corrects_version=corrects, amend_reason=reason, in_report=in_report)
        msg = decision_message(
            d, version=version, corrects_version=corrects, amend_reason=reason, in_report=in_report,
            close_id=close_id, partition=partition, emitted_at=now,
        )  # fmt: skip
        assert raw == orjson.dumps(msg)
        assert dg == msg["digest"] == digest(d) == enc.digest(d)


@settings(max_examples=200, deadline=None)
@given(st.data(), TEXT, st.lists(st.tuples(TEXT, TEXT), max_size=5))
def test_digests_of_one_verdict_equal_each_decisions_digest(data, company, pairs):
    """What the sink checks a column of decisions with: d's pieces, each account's evidence and id."""
    d = data.draw(a_decision(company, "2026-10"))
    got = DecisionEncoder().digests(d, [e for e, _ in pairs], [u for _, u in pairs])
    assert got == [digest(dataclasses.replace(d, evidence=e, user_id=u)) for e, u in pairs]


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(st.tuples(TEXT, st.lists(st.tuples(TEXT, TEXT), max_size=6)), min_size=1, max_size=4))
def test_one_encoder_digests_the_columns_of_several_verdicts(data, verdicts):
    """The sink keeps one encoder per batch: each verdict's column gets its own decisions' digests."""
    enc = DecisionEncoder()
    for company, pairs in verdicts:
        d = data.draw(a_decision(company, "2026-10"))
        got = enc.digests(d, [e for e, _ in pairs], [u for _, u in pairs])
        assert got == [digest(dataclasses.replace(d, evidence=e, user_id=u)) for e, u in pairs]


def test_digests_refuse_columns_of_different_lengths():
    d = Decision("c", "u", "2026-10", True, True, "standard", "R2", "r", "[]", Decimal("4.00"), "2026.11", "")
    with pytest.raises(ValueError, match="2 evidence texts for 1 user ids"):
        DecisionEncoder().digests(d, ["[]", "[]"], ["u"])


@given(st.lists(st.text(max_size=20)))
def test_checksum_of_digests_is_one_update_per_sorted_digest(digests):
    """The checksum hashes the sorted digests joined: the same sha256 as an update per digest."""
    h = hashlib.sha256()
    for dg in sorted(digests):
        h.update(dg.encode())
    assert checksum_of_digests(iter(digests)) == h.hexdigest()
