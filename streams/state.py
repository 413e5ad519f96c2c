"""The fold agent's state: facts of projections/facts.py kept in key-value tables, merged per event.

No Faust in here: the state works on `KV` objects (a plain dict plus a write callback), so the
agent binds them to Faust tables (write = changelog record on the current routed partition) and
the unit tests bind them to dicts. The values are the JSON forms of the facts (lists, not tuples),
exactly what a table holds after recovery from its changelog, so a value compares equal before and
after a restart and a key is written ONLY when its merged value changed.

Tables and keys (SEP = "\\x1f"):

- companies  company_id                  -> CompanyFacts.to_json()
- accounts   company SEP user            -> AccountFacts.to_json()
- activity   company SEP user SEP YYYY-MM -> MonthActivity.to_tuple() (as a list)
- pending    company SEP user            -> [[kind, ts_us, event_id], ...] activity of a company
                                            whose `company_registered` has not arrived yet
- closes     YYYY-MM SEP partition        -> {"seen": [source partitions], "n", "close_id", "closed"}
- emitted    company SEP YYYY-MM          -> {"iv": invoice version, "id": invoice digest, "b": buckets}
             company SEP YYYY-MM SEP b     -> {user: [version, digest]} (b = crc32(user) % buckets)
- stats      partition (str)              -> counters + the last offsets counted (exact counts)

Activity is bucketed by local day in the company's zone. Until the company is registered its
activity waits in `pending`, compacted: per (user, kind, 15-minute UTC slot) only the earliest
event is kept, which loses nothing (every zone offset in use is a multiple of 15 minutes, so a
slot lies within one local day in any zone, and the earliest event of a kind is the only evidence
the facts keep).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from projections.calendar import Month, local_date, to_us, zone
from projections.facts import (
    ACCOUNT_EVENTS,
    BILLING_ACTIVITY,
    COMPANY_EVENTS,
    NOTIFICATION_ACTIVITY,
    REPORTING_ACTIVITY,
    AccountFacts,
    CompanyFacts,
    MonthActivity,
    Record,
    activity_delta,
    company_deltas,
    event_fields,
    ordered,
    record_of,
)
from schemas.decode import validate_event
from schemas.events import AccountScoped, parse_rfc3339
from streams.routing import fast_ts_us, home_partition

log = logging.getLogger("seatledger.worker")

SEP = "\x1f"
SLOT_US = 15 * 60 * 1_000_000
HOUR_US = 3600 * 1_000_000
UTC = zone("UTC")
ACTIVITY_KINDS = BILLING_ACTIVITY | REPORTING_ACTIVITY | NOTIFICATION_ACTIVITY
# kind -> (billing, reporting, notification), and one shared str object per kind (less memory)
KIND_CLASS = {k: (k in BILLING_ACTIVITY, k in REPORTING_ACTIVITY, k in NOTIFICATION_ACTIVITY) for k in ACTIVITY_KINDS}
KIND_STR = {k: k for k in ACTIVITY_KINDS}


def norm(value: Any) -> Any:
    """The JSON form of a value (tuples become lists): what a table holds after recovery."""
    return orjson.loads(orjson.dumps(value))


# ---- compact value formats (internal to the worker; see docs/streaming.md) ----------------------
#
# accounts: [f_ts, f_eid, f_kind, r_ts, r_eid, r_type, r_attrs, ...]: first_seen (3 x None when
#           unknown), then every record in (ts, event_id) order, 4 slots each; r_attrs is None or a
#           flat [k1, v1, k2, v2, ...] (sorted keys, like Record.attrs).
# activity: [bill_days, report_days, notify_days, b_ts, b_eid, b_kind, r_ts, r_eid, r_kind,
#           n_ts, n_eid, n_kind]: the three bit masks, then the first evidence of each class
#           (3 x None when absent), trailing absent evidences left out (a login: 9 slots).
# One flat list of ints and strings per key instead of dicts of nested lists: no repeated dict keys,
# one list object, and the strings shared by identity with the event that produced them.

# The first evidence of an activity class: (ts, event_id, kind) as a list or tuple; all None: absent.
Evidence = Sequence[Any]

_INTERN: dict[str, str] = {}


def _intern(s: str) -> str:
    """One object per event type / attribute name (few distinct values, very many uses)."""
    return _INTERN.setdefault(s, s)


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float)) else norm(v)


def encode_account(acc: AccountFacts) -> list:
    f = acc.first_seen
    out: list = [f[0], f[1], _intern(f[2])] if f else [None, None, None]
    for r in ordered(acc.records):
        attrs = None
        if r.attrs:
            attrs = []
            for k, v in r.attrs:
                attrs.append(_intern(k))
                attrs.append(_plain(v))
        out += (r.ts, r.event_id, _intern(r.type), attrs)
    return out


def decode_account(v: list) -> AccountFacts:
    recs = {}
    for i in range(3, len(v), 4):
        a = v[i + 3]
        attrs = tuple((a[j], a[j + 1]) for j in range(0, len(a), 2)) if a else ()
        recs[v[i + 1]] = Record(v[i], v[i + 1], v[i + 2], attrs)
    return AccountFacts(recs, (v[0], v[1], v[2]) if v[0] is not None else None)


def decode_account_records(v: list) -> tuple[list[Record], tuple | None]:
    """An account's records in (ts, event_id) order (as stored) and its first_seen: what
    `projections.decide.BulkDecider` reads, without the dict `decode_account` builds."""
    recs = []
    for i in range(3, len(v), 4):
        a = v[i + 3]
        recs.append(Record(v[i], v[i + 1], v[i + 2], tuple((a[j], a[j + 1]) for j in range(0, len(a), 2)) if a else ()))
    return recs, ((v[0], v[1], v[2]) if v[0] is not None else None)


def encode_activity(bd: int, rd: int, nd: int, fb: Evidence | None, fr: Evidence | None, fn: Evidence | None) -> list:
    """fb, fr, fn: (ts, event_id, kind) sequences or None."""
    tail: tuple[Evidence, ...]
    if fn is not None:
        tail = (fb or _NONE3, fr or _NONE3, fn)
    elif fr is not None:
        tail = (fb or _NONE3, fr)
    elif fb is not None:
        tail = (fb,)
    else:
        tail = ()
    out: list[Any] = [bd, rd, nd]
    for e in tail:
        out += e
    return out


_NONE3: Evidence = (None, None, None)


def decode_activity(v: list) -> MonthActivity:
    """Written out, without a loop: the close decodes one per account."""
    n = len(v)
    return MonthActivity(
        v[0],
        v[1],
        v[2],
        (v[3], v[4], v[5]) if n > 3 and v[3] is not None else None,
        (v[6], v[7], v[8]) if n > 6 and v[6] is not None else None,
        (v[9], v[10], v[11]) if n > 9 and v[9] is not None else None,
    )


class KV:
    """A table as the state sees it: reads from `raw`, writes to `raw` and to `write` (changelog)."""

    __slots__ = ("raw", "_write", "_delete")

    def __init__(
        self,
        raw: dict | None = None,
        write: Callable[[str, Any], None] | None = None,
        delete: Callable[[str], None] | None = None,
    ):
        self.raw = raw if raw is not None else {}
        self._write = write
        self._delete = delete

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self.raw[key] = value
        if self._write is not None:
            self._write(key, value)

    def delete(self, key: str) -> None:
        if key in self.raw:
            del self.raw[key]
            if self._delete is not None:
                self._delete(key)


TABLES = ("companies", "accounts", "activity", "pending", "closes", "emitted", "stats")


@dataclass
class Stores:
    companies: KV = field(default_factory=KV)
    accounts: KV = field(default_factory=KV)
    activity: KV = field(default_factory=KV)
    pending: KV = field(default_factory=KV)
    closes: KV = field(default_factory=KV)
    emitted: KV = field(default_factory=KV)
    stats: KV = field(default_factory=KV)


@dataclass(slots=True)
class Affected:
    """What a message changed in a company that has closed months here: what to recompute."""

    company_id: str
    users: set[str] = field(default_factory=set)
    company_wide: bool = False
    floor: str = "9999-12"  # earliest month (YYYY-MM) the changes can touch


@dataclass(slots=True)
class FoldResult:
    events: int = 0
    changed: int = 0
    duplicates: int = 0
    late: int = 0
    errors: int = 0
    affected: dict[str, Affected] = field(default_factory=dict)
    # (element, its local month) of events for months past their late window on this partition:
    # their activity is not folded; the fold sends each to the late record (the DLQ)
    past_window: list[tuple[dict, str]] = field(default_factory=list)


def month_floor(ts: int) -> str:
    """The earliest local month an instant can fall in, in any zone (UTC-12 is the westernmost)."""
    return str(Month.of(local_date(ts - 12 * HOUR_US, UTC)))


NO_MONTH = "0000-00"  # sorts before every month: nothing retired yet
DEFAULT_LATE_WINDOW = 3  # months after a month's close during which late events still amend it


def new_stats() -> dict:
    return {"events": 0, "duplicates": 0, "late": 0, "rejected": 0, "off": -1, "rej_off": {}, "retired": NO_MONTH}


def months_before(month: str, n: int) -> str:
    """YYYY-MM `n` months before `month`."""
    y, m = int(month[:4]), int(month[5:7])
    k = y * 12 + (m - 1) - n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


class FoldState:
    """Merges routed events into the stores. One instance per worker, all partitions."""

    def __init__(self, stores: Stores, partitions: int, late_window: int = DEFAULT_LATE_WINDOW):
        self.s = stores
        self.partitions = partitions
        self.late_window = late_window
        self._retired = NO_MONTH  # the partition being folded: months up to this one are retired
        self._tz: dict[str, ZoneInfo | None] = {}
        self._day: dict[tuple[str, int], tuple[str, int]] = {}
        self._closed: dict[int, set[str]] | None = None
        self._active: dict[str, set[str]] = {}  # month -> companies: companies_with_activity
        self.on_new_account: Callable[[str, str], None] | None = None  # (company, user)

    # ---- companies' zones ----------------------------------------------------------------------

    def tz_of(self, cid: str) -> ZoneInfo | None:
        """The company's billing zone once it is registered, else None (activity waits)."""
        try:
            return self._tz[cid]
        except KeyError:
            pass
        raw = self.s.companies.get(cid)
        tz = None
        if raw is not None and any(r[2] == "company_registered" for r in raw["r"]):
            tz = zone(CompanyFacts.from_json(raw).timezone_name)
        self._tz[cid] = tz
        return tz

    def local_day(self, ts: int, tz: ZoneInfo) -> tuple[str, int]:
        """(YYYY-MM, day of month) of an instant in a zone, cached per 15-minute slot."""
        slot = ts // SLOT_US
        key = (tz.key, slot)
        try:
            return self._day[key]
        except KeyError:
            pass
        d0 = local_date(slot * SLOT_US, tz)
        d1 = local_date(slot * SLOT_US + SLOT_US - 1, tz)
        if d0 != d1:  # a zone whose offset is not a multiple of 15 minutes: no caching
            d = local_date(ts, tz)
            return f"{d.year:04d}-{d.month:02d}", d.day
        if len(self._day) > 500_000:
            self._day.clear()
        hit = self._day[key] = (f"{d0.year:04d}-{d0.month:02d}", d0.day)
        return hit

    # ---- closed months ---------------------------------------------------------------------------

    def closed_months(self, partition: int) -> set[str]:
        if self._closed is None:
            self._closed = {}
            for key, val in self.s.closes.raw.items():
                if val.get("closed"):
                    month, p = key.split(SEP)
                    self._closed.setdefault(int(p), set()).add(month)
        return self._closed.setdefault(partition, set())

    def mark_closed(self, partition: int, month: str) -> None:
        self.closed_months(partition).add(month)

    # ---- the late window: months whose facts are dropped ---------------------------------------

    def retired_through(self, partition: int) -> str:
        """The last month retired on `partition` (its activity dropped), or NO_MONTH."""
        st = self.s.stats.get(str(partition))
        return st.get("retired", NO_MONTH) if st else NO_MONTH

    def retire(self, partition: int, closed: str) -> int:
        """`closed` was just closed on `partition`: drop the activity and emitted versions of the
        months whose late window ended with it (tombstones in the changelogs); how many keys."""
        through = months_before(closed, self.late_window)
        if through <= self.retired_through(partition):
            return 0
        n = self.partitions
        dropped = 0
        for table, month_at in ((self.s.activity, 2), (self.s.emitted, 1)):
            doomed = []
            for key in table.raw:
                if month_at == 2 and key[-7:] > through:  # an activity key ends with its month (YYYY-MM)
                    continue  # most keys, at a close: a month still in its late window; no split
                parts = key.split(SEP)
                if parts[month_at] <= through and home_partition(parts[0], n) == partition:
                    doomed.append(key)
            for key in doomed:
                table.delete(key)
            dropped += len(doomed)
        key = str(partition)
        self.s.stats.put(key, {**(self.s.stats.get(key) or new_stats()), "retired": through})
        log.info("event=months_retired partition=%d through=%s keys=%d", partition, through, dropped)
        return dropped

    def reset_caches(self) -> None:
        """After recovery or a rebalance: everything is re-read from the tables."""
        self._tz.clear()
        self._closed = None
        self._active.clear()

    def companies_with_activity(self, month: str) -> set[str]:
        """The companies with an activity key in `month` (YYYY-MM). Read from the table at first
        need per month (one `endswith` per key), then kept as keys are added (a retired month may
        stay: whoever skips lookups by it then only looks in vain). The close looks up an
        account's activity of an earlier month only when its company has some there: one dict
        miss per account and month was ~7 % of a close's CPU."""
        found = self._active.get(month)
        if found is None:
            found = self._active[month] = {k[: k.index(SEP)] for k in self.s.activity.raw if k.endswith(month)}
        return found

    # ---- the stats table: exact counts per routed partition ------------------------------------

    def count_folded(self, partition: int, offset: int, res: FoldResult) -> None:
        """Add what the message at `offset` folded to the partition's counts, once: a message
        redelivered after a restart (at or below the last offset counted) was counted already."""
        key = str(partition)
        st = self.s.stats.get(key) or new_stats()
        if offset <= st["off"]:
            return
        self.s.stats.put(
            key,
            {
                **st,
                "events": st["events"] + res.events,
                "duplicates": st["duplicates"] + res.duplicates,
                "late": st["late"] + res.late,
                "off": offset,
            },
        )

    def count_rejected(self, partition: int, ctl: dict) -> None:
        """Add a router's rejection counts (schemas.control.rejected_control) to the partition's
        counts, once per source offset (the router may send them again after a restart)."""
        key = str(partition)
        st = self.s.stats.get(key) or new_stats()
        sp = str(ctl["source_partition"])
        last = st["rej_off"].get(sp, -1)
        fresh = [(o, c) for o, c in ctl["items"] if o > last]
        if not fresh:
            return
        self.s.stats.put(
            key,
            {
                **st,
                "rejected": st["rejected"] + sum(c for _, c in fresh),
                "rej_off": {**st["rej_off"], sp: max(o for o, _ in fresh)},
            },
        )

    # ---- the fold --------------------------------------------------------------------------------

    def fold_items(self, items: Iterable[dict], partition: int) -> FoldResult:
        res = FoldResult()
        closed = self.closed_months(partition)
        retired = self._retired = self.retired_through(partition)
        for item in items:
            res.events += 1
            try:
                kind = item["type"]
                if kind in KIND_CLASS:
                    changed, company_changed, month, ts = self._fold_activity_event(item, kind)
                else:
                    changed, company_changed, month, ts = self._fold_other_event(item, kind)
            except Exception as exc:  # a routed element that does not fold: log, count, go on
                res.errors += 1
                log.error("event=fold_error error=%r item=%s", exc, orjson.dumps(item)[:500].decode(errors="replace"))
                continue
            if month <= retired:
                res.past_window.append((item, month))
            if changed:
                res.changed += 1
            else:
                res.duplicates += 1
            if closed and month in closed:
                res.late += 1
            if changed and closed:
                cid = item["company_id"]
                aff = res.affected.get(cid)
                if aff is None:
                    aff = res.affected[cid] = Affected(cid)
                if company_changed or "user_id" not in item:
                    aff.company_wide = True
                else:
                    aff.users.add(item["user_id"])
                floor = "0000-01" if kind == "company_registered" else month_floor(ts)
                if floor < aff.floor:
                    aff.floor = floor
        return res

    def _month_of(self, cid: str, ts: int) -> str:
        return self.local_day(ts, self.tz_of(cid) or UTC)[0]

    def _fold_activity_event(self, item: dict, kind: str) -> tuple[bool, bool, str, int]:
        """The fast path for the bulk of the traffic: no pydantic, lists compared in place."""
        cid = item["company_id"]
        uid = item["user_id"]
        eid = item["event_id"]
        occurred = item["occurred_at"]
        ts = fast_ts_us(occurred)
        if ts is None:
            ts = to_us(parse_rfc3339(occurred))
        kind = KIND_STR[kind]
        ev = [ts, eid, kind]
        s = self.s
        # keep the earliest own event of the company (`first_own`), inline: the hot path, and the only place
        cur = s.companies.raw.get(cid)
        if cur is None:
            s.companies.put(cid, {"r": [], "f": ev, "g": []})
            self._tz.pop(cid, None)
            company_changed = True
        elif cur["f"] is None or ev < cur["f"]:
            s.companies.put(cid, {"r": cur["r"], "f": ev, "g": cur["g"]})
            company_changed = True
        else:
            company_changed = False
        changed = company_changed
        akey = cid + SEP + uid
        acc = s.accounts.raw.get(akey)
        if acc is None:
            s.accounts.put(akey, [ts, eid, kind])
            changed = True
            if self.on_new_account is not None:
                self.on_new_account(cid, uid)
        elif acc[0] is None or ev < acc[0:3]:
            s.accounts.put(akey, [ts, eid, kind, *acc[3:]])
            changed = True
        tz = self._tz[cid] if cid in self._tz else self.tz_of(cid)
        if tz is None:
            changed |= self._add_pending(akey, kind, ts, eid)
            month = self.local_day(ts, UTC)[0]
        else:
            month, day = self.local_day(ts, tz)
            if month > self._retired:  # a retired month's activity is gone: not folded back in
                changed |= self._merge_activity(akey + SEP + month, kind, day, ev)
        return changed, company_changed, month, ts

    def _merge_activity(self, akey: str, kind: str, day: int, ev: list) -> bool:
        bit = 1 << (day - 1)
        b, r, n = KIND_CLASS[kind]
        cur = self.s.activity.raw.get(akey)
        if cur is None:
            found = self._active.get(akey[-7:])  # companies_with_activity, once read
            if found is not None:
                found.add(akey[: akey.index(SEP)])
            self.s.activity.put(
                akey,
                encode_activity(
                    bit if b else 0,
                    bit if r else 0,
                    bit if n else 0,
                    ev if b else None,
                    ev if r else None,
                    ev if n else None,
                ),
            )
            return True
        size = len(cur)
        bd, rd, nd = cur[0], cur[1], cur[2]
        fb = cur[3:6] if size > 3 and cur[3] is not None else None
        fr = cur[6:9] if size > 6 and cur[6] is not None else None
        fn = cur[9:12] if size > 9 and cur[9] is not None else None
        changed = False
        if b:
            if not bd & bit:
                bd |= bit
                changed = True
            if fb is None or ev < fb:
                fb = ev
                changed = True
        if r:
            if not rd & bit:
                rd |= bit
                changed = True
            if fr is None or ev < fr:
                fr = ev
                changed = True
        if n:
            if not nd & bit:
                nd |= bit
                changed = True
            if fn is None or ev < fn:
                fn = ev
                changed = True
        if changed:
            self.s.activity.put(akey, encode_activity(bd, rd, nd, fb, fr, fn))
        return changed

    def _add_pending(self, akey: str, kind: str, ts: int, eid: str) -> bool:
        cur = self.s.pending.get(akey) or []
        slot = ts // SLOT_US
        for i, (k, t, e) in enumerate(cur):
            if k == kind and t // SLOT_US == slot:
                if [ts, eid] < [t, e]:
                    new = list(cur)
                    new[i] = [kind, ts, eid]
                    self.s.pending.put(akey, new)
                    return True
                return False
        self.s.pending.put(akey, [*cur, [kind, ts, eid]])
        return True

    def pending_of(self, cid: str) -> dict[str, list]:
        prefix = cid + SEP
        return {k[len(prefix) :]: v for k, v in self.s.pending.raw.items() if k.startswith(prefix)}

    def _flush_pending(self, cid: str, tz: ZoneInfo) -> None:
        """The company is registered now: bucket its waiting activity in its zone."""
        for uid, entries in self.pending_of(cid).items():
            akey = cid + SEP + uid
            for kind, ts, eid in entries:
                month, day = self.local_day(ts, tz)
                self._merge_activity(akey + SEP + month, KIND_STR[kind], day, [ts, eid, KIND_STR[kind]])
            self.s.pending.delete(akey)

    def _fold_other_event(self, item: dict, kind: str) -> tuple[bool, bool, str, int]:
        """Account and company kinds (a few percent of the traffic): exactly projections.facts.fold."""
        ev = validate_event(item)
        ts = to_us(ev.occurred_at)
        company_changed = False
        for cid, delta in company_deltas(ev):
            company_changed |= self._merge_company(cid, delta)
        changed = company_changed
        cid = ev.company_id
        if kind not in COMPANY_EVENTS:
            assert isinstance(ev, AccountScoped)  # every other kind has a user_id (schemas.events)
            acc = AccountFacts(first_seen=(ts, ev.event_id, ev.type))
            if kind in ACCOUNT_EVENTS:
                acc.records = {ev.event_id: record_of(ev.event_id, ev.type, ts, event_fields(ev))}
            changed |= self._merge_account(cid + SEP + ev.user_id, acc)
        return changed, company_changed, self._month_of(cid, ts), ts

    def _merge_account(self, key: str, delta: AccountFacts) -> bool:
        raw = self.s.accounts.get(key)
        cur = decode_account(raw) if raw is not None else None
        new = delta if cur is None else cur.merge(delta)
        if cur is not None and new == cur:
            return False
        self.s.accounts.put(key, encode_account(new))
        if cur is None and self.on_new_account is not None:
            self.on_new_account(*key.split(SEP, 1))
        return True

    def _merge_company(self, cid: str, delta: CompanyFacts) -> bool:
        raw = self.s.companies.get(cid)
        cur = CompanyFacts.from_json(raw) if raw is not None else None
        new = delta if cur is None else cur.merge(delta)
        if cur is not None and new == cur:
            return False
        before = self.tz_of(cid)
        self.s.companies.put(cid, norm(new.to_json()))
        self._tz.pop(cid, None)
        after = self.tz_of(cid)
        if after is not None and before is None:
            self._flush_pending(cid, after)
        elif after is not None and before is not None and after.key != before.key:
            log.warning(
                "event=zone_changed company=%s before=%s after=%s note=activity_already_bucketed_in_old_zone",
                cid, before.key, after.key,
            )  # fmt: skip
        return True

    # ---- reading facts back (close, amendments) ------------------------------------------------

    def company(self, cid: str) -> CompanyFacts:
        raw = self.s.companies.get(cid)
        return CompanyFacts.from_json(raw) if raw is not None else CompanyFacts()

    def activity_of(self, cid: str, uid: str, month: str) -> MonthActivity | None:
        raw = self.s.activity.get(cid + SEP + uid + SEP + month)
        return decode_activity(raw) if raw is not None else None

    def pending_activity(self, cid: str) -> dict[tuple[str, str], MonthActivity]:
        """An unregistered company's waiting activity folded in UTC, not persisted: {(user, month)}."""
        out: dict[tuple[str, str], MonthActivity] = {}
        for uid, entries in self.pending_of(cid).items():
            for kind, ts, eid in entries:
                m, delta = activity_delta(kind, ts, eid, UTC)
                month = str(m)
                cur = out.get((uid, month))
                out[(uid, month)] = delta if cur is None else cur.merge(delta)
        return out
