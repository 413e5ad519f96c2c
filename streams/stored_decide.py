"""The close's decisions from the worker's stored values, with `projections.decide.BulkDecider`
deciding, and without a `Record`, a record list or a `Decision` per account.

`BulkDecider` runs the rules once per account shape and fills each account's evidence from the
same places (`Template.slots`). The worker stores an account as one flat list (streams.state:
first_seen, then ts, event_id, type, attrs per record, in (ts, event_id) order), so the close
looks its accounts up by a key read from that list with slices (the records' types, where each
instant falls against the month's bounds, their attributes, whether there is a billing proof and
a notification): finer than the decider's raw key, so equal keys have one template and their
lifecycle records at the same places in the list. Only an account whose key is new is decoded
into records and goes through the decider; every other gets its template and its evidence items
as slices of its stored list. tests/unit/streams/test_stored_decide.py holds the messages of a
close to what the per-account path gives on random facts.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from projections.decide import BulkDecider, Decision, Template, evidence_item, evidence_json
from projections.facts import Record
from streams.state import decode_account_records, decode_activity

# Where an evidence item comes from, besides a place in the stored list (an int >= 0) or a
# constant of the company (any other object): the account's activity of the month.
_PROOF, _NOTIFY, _FIRST_BILL, _FIRST_REPORT = -1, -2, -3, -4
_SLOT_SOURCES = {"p": _PROOF, "n": _NOTIFY, "b": _FIRST_BILL, "rp": _FIRST_REPORT, "f": 0}
_NOTHING = (None, None, None, None)  # the activity's items of an account without activity


class StoredShape:
    """What the accounts of one stored key share: the decider's template, where each evidence
    item is found, the verdict as a `Decision` (an invoice reads only its shared values), and
    the encoded message pieces of the close that uses it (`pieces`, set by the close)."""

    __slots__ = ("template", "sources", "decision", "pieces")

    def __init__(self, template: Template, sources: tuple, decision: Decision):
        self.template = template
        self.sources = sources
        self.decision = decision
        self.pieces: Any = None


class StoredDecider:
    """`BulkDecider.decide` for stored accounts: `decide(raw, activity)` -> (shape, evidence items);
    the close writes a company's evidence texts at once (streams.evidence_column)."""

    __slots__ = ("bulk", "tz", "_proof", "_bucket", "_bounds", "_shapes")

    def __init__(self, bulk: BulkDecider):
        self.bulk = bulk
        self.tz = bulk.cm.tz
        self._proof: Callable[[Any, Any], Any] = bulk.ruleset.proof_of
        b = bulk.cm.bounds
        # 0: before the month, 1: day 1, 2: the rest of the month, 3: after it (as BulkDecider.raw_key)
        self._bucket = partial(bisect_right, (b.start_us, b.day1_cutoff_us, b.end_us))
        self._bounds = (b.start_us, b.day1_cutoff_us, b.end_us)  # the same, for one record's test inline
        self._shapes: dict[tuple, StoredShape] = {}

    def decide(self, raw: list, activity: list | None) -> tuple[StoredShape, list]:
        """The account's shape and its present evidence items, (ts, event_id, type) each, for
        `evidence_of`; `raw`: its stored value (first_seen set),
        `activity`: its stored activity of the month (streams.state.encode_activity) or None.
        The activity's evidence is read as slices of that list: no `MonthActivity` per account."""
        if activity is None:
            found: tuple = _NOTHING
            proof = notif = None
        else:
            n = len(activity)
            bill = activity[3:6] if n > 3 and activity[3] is not None else None
            report = activity[6:9] if n > 6 and activity[6] is not None else None
            notif = activity[9:12] if n > 9 and activity[9] is not None else None
            proof = self._proof(bill, report)
            found = (proof, notif, bill, report)  # by ~source: _PROOF, _NOTIFY, _FIRST_BILL, _FIRST_REPORT
        if len(raw) == 7:  # one record (most accounts): its bucket (`_bucket`, inlined), type and attributes
            a, t = raw[6], raw[3]
            start, day2, end = self._bounds
            key: tuple = (
                0 if t < start else 1 if t < day2 else 2 if t < end else 3,
                raw[5],
                a if a is None else tuple(a),
                proof is not None,
                notif is not None,
            )
        else:  # a tuple of buckets first: never equal to a key of one record
            attrs = raw[6::4]
            key = (
                tuple(map(self._bucket, raw[3::4])),
                tuple(raw[5::4]),
                tuple(a if a is None else tuple(a) for a in attrs) if any(attrs) else None,
                proof is not None,
                notif is not None,
            )
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._shape(raw, activity, proof)
        items: list[Any] = []
        for src in shape.sources:
            if type(src) is not int:
                items.append(src)
            elif src >= 0:
                items.append(raw[src : src + 3])
            else:
                ev = found[~src]
                if ev is not None:
                    items.append(ev)
        return shape, items

    def _shape(self, raw: list, activity: list | None, proof: object) -> StoredShape:
        """A new key: the account through the decider, its template's slots as places (a
        company's record as its evidence tuple: every item is then (ts, event_id, type))."""
        records, first_seen = decode_account_records(raw)
        act = None if activity is None else decode_activity(activity)
        tpl, kept = self.bulk.template(records, first_seen, act, proof)
        at = {id(r): 3 + 4 * i for i, r in enumerate(records)}
        sources: list[object] = []
        for slot in tpl.slots:
            if slot[0] == "r":
                sources.append(at[id(kept[slot[1]])])
            elif slot[0] == "k":
                sources.append(slot[1].evidence if isinstance(slot[1], Record) else slot[1])
            else:
                sources.append(_SLOT_SOURCES[slot[0]])
        return StoredShape(tpl, tuple(sources), self.bulk.decision(tpl, "", ""))


def evidence_of(items: list, tz: ZoneInfo) -> str:
    """`evidence_json(items, tz)` of present (ts, event_id, type) items: one item, or two of
    distinct events (most accounts), written without its loop."""
    n = len(items)
    if n == 2:
        a, b = items
        if a[1] != b[1]:
            return f"[{evidence_item(a[0], a[1], a[2], tz)},{evidence_item(b[0], b[1], b[2], tz)}]"
    elif n == 1:
        a = items[0]
        return f"[{evidence_item(a[0], a[1], a[2], tz)}]"
    return evidence_json(items, tz)
