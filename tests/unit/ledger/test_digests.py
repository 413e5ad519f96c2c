"""The sink's digest check computes each decision's own digest, whatever its values."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.digests import verdict_digests
from projections.decide import Decision
from projections.snapshots import DecisionEncoder, digest

TEXT = st.text(max_size=12)  # any characters: quotes, backslashes, controls, non-ASCII
VERDICTS = st.builds(
    Decision,
    TEXT, TEXT, st.sampled_from(["2026-10", "2026-09"]), st.booleans(), st.booleans(),
    st.sampled_from(["standard", "frontline"]), st.sampled_from(["R1", "R2", "R8"]), TEXT, TEXT,
    st.sampled_from([Decimal("0"), Decimal("0.00"), Decimal("4.00"), Decimal("12.5")]),
    st.sampled_from(["2026.11", "2026.10"]), st.sampled_from(["", "premium", "advanced"]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(VERDICTS, st.lists(st.tuples(TEXT, TEXT), max_size=6)), min_size=1, max_size=4))
def test_each_accounts_digest_is_its_decisions_digest(verdicts):
    encoder = DecisionEncoder()  # one encoder for several verdicts: the sink's, per batch
    for verdict, pairs in verdicts:
        evidence, user_ids = [e for e, _ in pairs], [u for _, u in pairs]
        got = verdict_digests(encoder, verdict, evidence, user_ids)
        assert got == [digest(dataclasses.replace(verdict, evidence=e, user_id=u)) for e, u in pairs]
        assert got == encoder.digests(verdict, evidence, user_ids)


def test_columns_of_different_lengths_are_refused():
    verdict = Decision("c", "u", "2026-10", True, True, "standard", "R2", "r", "[]", Decimal("4.00"), "2026.11", "")
    with pytest.raises(ValueError, match="2 evidence texts for 1 user ids"):
        verdict_digests(DecisionEncoder(), verdict, ["[]", "[]"], ["u"])
