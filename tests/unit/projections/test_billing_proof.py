"""R2's billing proof from the month's first billing and first report evidence (`RuleSet.proof_of`,
what the worker's close reads from its stored values) is `billing_proof` of the activity: the
first billing evidence, or under 2026.10 the earlier of it and the first report evidence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.facts import MonthActivity
from projections.rulesets import RULESETS

EVIDENCE = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 3), st.sampled_from(["e1", "e2", "e3"]), st.sampled_from(["login", "visit"])),
)


@settings(max_examples=300, deadline=None)
@given(bill=EVIDENCE, report=EVIDENCE, version=st.sampled_from(sorted(RULESETS)), as_lists=st.booleans())
def test_proof_of_the_first_evidences_is_the_billing_proof_of_the_activity(bill, report, version, as_lists):
    rs = RULESETS[version]
    act = MonthActivity(1, 1, 0, bill, report, None)
    candidates = [e for e in (bill, report) if e is not None] if rs.notification_view_bills else [bill]
    expected = min((e for e in candidates if e is not None), default=None)
    assert rs.billing_proof(act) == expected
    if as_lists:  # the close passes slices of its stored lists: the proof is one of them, itself
        bill, report = (None if e is None else list(e) for e in (bill, report))
    proof = rs.proof_of(bill, report)
    assert proof is (bill if proof is bill else report)
    assert (None if proof is None else tuple(proof)) == expected
