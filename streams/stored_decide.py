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

from projections.decide import BulkDecider, Decision, Template, evidence_json
from projections.facts import MonthActivity
from streams.state import decode_account_records

# Where an evidence item comes from, besides a place in the stored list (an int >= 0) or a
# constant of the company (any other object): the account's activity of the month.
_PROOF, _NOTIFY, _FIRST_BILL, _FIRST_REPORT = -1, -2, -3, -4
_SLOT_SOURCES = {"p": _PROOF, "n": _NOTIFY, "b": _FIRST_BILL, "rp": _FIRST_REPORT, "f": 0}


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
    """`BulkDecider.decide` for stored accounts: `decide(raw, activity)` -> (shape, evidence)."""

    __slots__ = ("bulk", "tz", "_proof", "_bucket", "_shapes")

    def __init__(self, bulk: BulkDecider):
        self.bulk = bulk
        self.tz = bulk.cm.tz
        self._proof: Callable[[MonthActivity | None], Any] = bulk.ruleset.billing_proof
        b = bulk.cm.bounds
        # 0: before the month, 1: day 1, 2: the rest of the month, 3: after it (as BulkDecider.raw_key)
        self._bucket = partial(bisect_right, (b.start_us, b.day1_cutoff_us, b.end_us))
        self._shapes: dict[tuple, StoredShape] = {}

    def decide(self, raw: list, activity: MonthActivity | None) -> tuple[StoredShape, str]:
        """The account's shape and evidence column; `raw`: its stored value (first_seen set)."""
        proof = self._proof(activity)
        notif = activity.first_notify if activity is not None else None
        if len(raw) == 7:  # one record (most accounts): its bucket, type and attributes
            a = raw[6]
            key: tuple = (
                self._bucket(raw[3]),
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
            elif src == _PROOF:
                items.append(proof)
            elif activity is None:
                continue
            elif src == _NOTIFY:
                items.append(notif)
            elif src == _FIRST_BILL:
                items.append(activity.first_bill)
            else:
                items.append(activity.first_report)
        return shape, evidence_json(items, self.tz)

    def _shape(self, raw: list, activity: MonthActivity | None, proof: object) -> StoredShape:
        """A new key: the account through the decider, its template's slots as places."""
        records, first_seen = decode_account_records(raw)
        tpl, kept = self.bulk.template(records, first_seen, activity, proof)
        at = {id(r): 3 + 4 * i for i, r in enumerate(records)}
        sources: list[object] = []
        for slot in tpl.slots:
            if slot[0] == "r":
                sources.append(at[id(kept[slot[1]])])
            elif slot[0] == "k":
                sources.append(slot[1])
            else:
                sources.append(_SLOT_SOURCES[slot[0]])
        return StoredShape(tpl, tuple(sources), self.bulk.decision(tpl, "", ""))
