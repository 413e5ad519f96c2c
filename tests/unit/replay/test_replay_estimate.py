"""The batch path's bill so far: events that happened before as_of, the same decide(), the same
messages the sink stores."""

from __future__ import annotations

from datetime import datetime

import orjson

from projections.calendar import Month, to_us
from projections.estimate import estimate_company
from replay.estimate import estimate_run_messages, estimates_from_events
from tests.support.given import PRICES, World

AS_OF = "2026-10-15T00:00:00+00:00"


def test_the_batch_estimate_counts_what_happened_before_as_of_like_the_reference_fold(tmp_path):
    w = World().company("acme", tz="Europe/Amsterdam").member("acme", "ann").member("acme", "bob")
    w.do("login", "acme", "ann", "2026-10-03").do("login", "acme", "bob", "2026-10-20")  # bob: after as_of
    w.company("globex", plan="advanced").member("globex", "g1")
    src = tmp_path / "events.ndjson"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in w.raw))

    got = estimates_from_events(str(src), Month.parse("2026-10"), datetime.fromisoformat(AS_OF), PRICES)

    known = World()
    known.raw = [
        e for e in w.raw if to_us(datetime.fromisoformat(e["occurred_at"])) < to_us(datetime.fromisoformat(AS_OF))
    ]
    for est in got:
        cm, decisions = known.decide_all(est.company_id, "2026-10")
        assert est == estimate_company(cm, decisions, to_us(datetime.fromisoformat(AS_OF)))
    statuses = {(e.company_id, a.decision.user_id): a.status for e in got for a in e.accounts}
    assert statuses == {("acme", "ann"): "on_track", ("acme", "bob"): "at_risk", ("globex", "g1"): "on_track"}

    msgs = estimate_run_messages(got, "run-1", datetime.fromisoformat(AS_OF))
    assert [m["kind"] for m in msgs] == ["estimate", "estimate", "company_estimate", "estimate", "company_estimate"]
    assert {m["as_of"] for m in msgs} == {"2026-10-15T00:00:00.000Z"} and all(m["provisional"] for m in msgs)
