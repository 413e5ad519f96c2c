"""The evidence column is written as text: it must be byte for byte the JSON of the list of dicts."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.calendar import from_us, zone
from projections.decide import evidence_item, evidence_json
from projections.facts import Record

ZONES = ("UTC", "Europe/Amsterdam", "Asia/Kathmandu", "America/St_Johns")
INSTANTS = st.integers(min_value=946_684_800_000_000, max_value=4_102_444_799_999_999)
IDS = st.one_of(st.text(max_size=12), st.sampled_from(['a"b', "a\\b", "tab\there", "\x00\x1f\x7f", "é☃😀", "x"]))
ITEMS = st.lists(
    st.one_of(
        st.none(),
        st.tuples(INSTANTS, IDS, st.sampled_from(["login", "visit", "claim", 'we"ird'])),
        st.builds(Record, INSTANTS, IDS, st.sampled_from(["invite", "trial_started"])),
    ),
    max_size=5,
)


def reference(items, tz) -> str:
    """What evidence_json wrote before: orjson over dicts, each event id once, the local time."""
    seen, out = set(), []
    for it in items:
        if it is None:
            continue
        ts, eid, kind = it.evidence if isinstance(it, Record) else it
        if eid in seen:
            continue
        seen.add(eid)
        spec = "seconds" if ts % 1_000_000 == 0 else "microseconds"
        out.append({"event_id": eid, "type": kind, "occurred_at": from_us(ts, tz).isoformat(timespec=spec)})
    return orjson.dumps(out).decode()


@settings(max_examples=400, deadline=None)
@given(items=ITEMS, zone_name=st.sampled_from(ZONES), whole=st.booleans())
def test_evidence_text_equals_the_json_of_the_dicts(items, zone_name, whole):
    if whole:
        items = [(it[0] - it[0] % 1_000_000, it[1], it[2]) if isinstance(it, tuple) else it for it in items]
    tz = zone(zone_name)
    assert evidence_json(items, tz) == reference(items, tz)


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(
        st.tuples(INSTANTS, IDS, st.sampled_from(["login", 'we"ird'])), max_size=4, unique_by=lambda it: it[1]
    ),
    zone_name=st.sampled_from(ZONES),
)
def test_the_elements_of_distinct_events_joined_are_the_evidence_text(items, zone_name):
    """`evidence_item` of each of several distinct events, joined as an array, is the column."""
    tz = zone(zone_name)
    joined = "[" + ",".join(evidence_item(ts, eid, kind, tz) for ts, eid, kind in items) + "]"
    assert joined == evidence_json(items, tz) == reference(items, tz)
