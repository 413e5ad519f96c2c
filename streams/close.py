"""Month close and amendments on one routed partition: facts -> decide() -> snapshot messages.

No Faust in here either: `Closer` reads the facts from a `FoldState`, remembers what it emitted in
the `emitted` table and yields (key, value, partition) for the snapshots topic; the agent sends them.

- A close marker of month M from every one of the N source partitions has arrived on routed
  partition q (the router forwards each source partition's marker after that partition's events):
  close M for q. Every company homed at q gets one `decision` message per account (version 1), one
  `company_month` message, then q gets one `partition_done` message.
- A later event that changes facts of a company with closed months on q (a late event): the
  affected decisions are recomputed for every closed month >= the event's earliest possible local
  month; a decision whose digest differs from the last emitted one is emitted again as version+1
  (`corrects_version`, `amend_reason="late_event"`); an account new to a closed month gets its
  version 1 the same way; the company_month message is re-emitted (version+1) when the invoice
  changed. Nothing emitted is ever overwritten, and an event that changes no fact emits nothing.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

import orjson

from projections.calendar import Month, to_us, utc_iso
from projections.decide import CompanyMonth, Decision, company_decider, company_has_month, company_month
from projections.estimate import estimate_company
from projections.facts import MonthActivity
from projections.invoice import build_invoice
from projections.mau import WINDOW_DAYS, months_needed
from projections.prices import PriceBook
from projections.rulesets import CURRENT, RuleSet
from projections.snapshots import (
    DecisionBlocks,
    DecisionEncoder,
    checksum_of_digests,
    company_month_message,
    estimate_messages,
    partition_done_message,
)
from streams.evidence_column import evidence_column
from streams.routing import home_partition
from streams.state import KV, SEP, Affected, FoldState, decode_activity, encode_activity, new_stats
from streams.stored_decide import StoredDecider, StoredShape

log = logging.getLogger("seatledger.worker")

BUCKET_ACCOUNTS = 2000  # accounts per `emitted` bucket record (keeps changelog records small)
LATE_EVENT = "late_event"

Emission = tuple[bytes, bytes, int | None]  # (key, value, partition or None: the key's home)
Row = tuple[str, StoredShape, str, int]  # a decided account: (user, shape, evidence, report days mask)
PACK_BYTES = 256 * 1024  # most a packed snapshot record holds (the fold's producer batches 512 KiB)


def packed(
    emissions: Iterable[tuple[bytes, bytes, int]], limit: int = PACK_BYTES
) -> Iterator[tuple[bytes, bytes, int, int]]:
    """Consecutive messages with one key and partition as one record, a JSON array of them (up
    to `limit` bytes; a message alone stays a JSON object): (key, value, partition, messages).

    A close sends a company's decisions and its company_month in a few records instead of one
    per account: the producer's and the sink's consumer's cost is per record. The sink reads each
    element as its own message (ledger.records.parse_record), in order, and rejects a bad one
    alone; all of a record's elements are stored in one transaction, so a record is never half
    stored."""
    buf: list[bytes] = []
    key, part, size = b"", 0, 1  # size: the array's bytes so far ("[" and each message with its "," or "]")
    for k, v, p in emissions:
        if buf and (k != key or p != part or size + len(v) + 1 > limit):
            yield key, _array(buf), part, len(buf)
            buf, size = [], 1
        key, part = k, p
        buf.append(v)
        size += len(v) + 1
    if buf:
        yield key, _array(buf), part, len(buf)


def _array(values: list[bytes]) -> bytes:
    return values[0] if len(values) == 1 else b"[" + b",".join(values) + b"]"


def invoice_digest(invoice_json: dict) -> str:
    return hashlib.sha256(orjson.dumps(invoice_json, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def mau_daily_fast(month: Month, activity_by_user: dict[str, dict[Month, MonthActivity | None]]) -> list[tuple]:
    """projections.mau.mau_daily, same result, in O(users x days) bit operations instead of
    O(users x days x 30) set lookups (17 of 22 s of a 20k-account close went there)."""
    months = sorted({m for h in activity_by_user.values() for m in h} | {month})
    start = months[0].first_day
    offset = {m: (m.first_day - start).days for m in months}
    masks = []
    for hist in activity_by_user.values():
        mask = 0
        for m, act in hist.items():
            if act is not None and act.report_days:
                mask |= act.report_days << offset[m]
        masks.append(mask)
    return mau_from_masks(month, (month.first_day - start).days, masks)


def mau_from_masks(month: Month, first: int, masks) -> list[tuple]:
    """Daily MAU of `month` from per-user masks of report days (bit k: day `start + k`; `first`: the
    index of the month's first day). A user counts on day d when a bit of d-29 .. d is set: smear
    each mask 29 days forward (shifts by 1, 2, 4, 8, 14), and count equal smeared months once.
    Equal masks are counted first (in C) and smeared once: many users share their days."""
    full = (1 << month.days) - 1
    patterns: dict[int, int] = {}
    for m, n in Counter(masks).items():
        if m:
            m |= m << 1
            m |= m << 2
            m |= m << 4
            m |= m << 8
            m |= m << 14  # bits 0..29 behind every set bit
            v = (m >> first) & full
            patterns[v] = patterns.get(v, 0) + n
    counts = [0] * month.days
    for v, c in patterns.items():
        i = 0
        while v:
            if v & 1:
                counts[i] += c
            v >>= 1
            i += 1
    return [(month.first_day + timedelta(days=i), counts[i]) for i in range(month.days)]


class History:
    """The months a report window of `month` reaches (projections.mau.months_needed) and where each
    starts in a per-user bit mask of report days: bit k = day k counted from the first such month."""

    __slots__ = ("month", "months", "names", "offsets", "first", "last", "window")

    def __init__(self, month: Month):
        self.month = month
        self.months = months_needed(month)
        self.names = [str(m) for m in self.months]
        start = self.months[0].first_day
        self.offsets = [(m.first_day - start).days for m in self.months]
        self.first = self.offsets[-1]  # index of the month's first day
        self.last = self.first + month.days - 1
        # the bits of the 30 days ending on the month's last day: `in_report` for a loop to inline
        self.window = ((1 << WINDOW_DAYS) - 1) << (self.last - WINDOW_DAYS + 1)

    def in_report(self, mask: int) -> bool:
        """projections.mau.in_report: monthly-active on the month's last day (30-day window)."""
        return mask & self.window != 0


_HISTORY: dict[str, History] = {}


def history_of(month_s: str) -> History:
    h = _HISTORY.get(month_s)
    if h is None:
        h = _HISTORY[month_s] = History(Month.parse(month_s))
    return h


def _now() -> str:
    return utc_iso(datetime.now(UTC))


class EmittedVersions:
    """[version, digest] of the decision last emitted per account of one company-month: the
    `emitted` table's bucket records `company SEP month SEP b` (b = crc32(user) % nb), read on first
    need; `save` writes back the buckets that changed."""

    __slots__ = ("table", "hkey", "nb", "buckets", "dirty")

    def __init__(self, table: KV, hkey: str, nb: int):
        self.table = table
        self.hkey = hkey
        self.nb = nb
        self.buckets: dict[int, dict[str, list]] = {}
        self.dirty: set[int] = set()

    def bucket(self, uid: str) -> tuple[int, dict[str, list]]:
        """(b, uid -> [version, digest]) of the account's bucket: looked up, then `put`, with one hash."""
        b = zlib.crc32(uid.encode()) % self.nb if self.nb > 1 else 0
        bk = self.buckets.get(b)
        if bk is None:
            bk = self.buckets[b] = dict(self.table.raw.get(f"{self.hkey}{SEP}{b}") or {})
        return b, bk

    def put(self, bucket: tuple[int, dict[str, list]], uid: str, version: int, digest: str) -> None:
        bucket[1][uid] = [version, digest]
        self.dirty.add(bucket[0])

    def put_firsts(self, firsts: list[tuple[tuple[int, dict[str, list]], str]], digests: list[str]) -> None:
        """`put` of version 1 for each (bucket, user) with its digest: a close's, in one loop."""
        dirty = self.dirty
        for ((b, bk), uid), dg in zip(firsts, digests, strict=True):
            bk[uid] = [1, dg]
            dirty.add(b)

    def save(self) -> None:
        for b in self.dirty:
            self.table.put(f"{self.hkey}{SEP}{b}", self.buckets[b])


@dataclass(slots=True)
class CloseCounts:
    """Snapshot messages emitted so far (the worker's metrics count their differences)."""

    decisions: int = 0
    amendments: int = 0
    company_months: int = 0
    companies: int = 0
    accounts: int = 0

    def since(self, before: CloseCounts) -> CloseCounts:
        """What was counted after `before` (a `copy()` taken earlier)."""
        return CloseCounts(**{f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)})

    def copy(self) -> CloseCounts:
        return replace(self)


class Closer:
    def __init__(self, state: FoldState, prices: PriceBook, ruleset: RuleSet = CURRENT, *, blocks: bool = True):
        """`blocks`: a close sends its first versions as `decision_block` messages (False: one
        `decision` message each, what sinks before that kind read)."""
        self.state = state
        self.blocks = blocks
        self.s = state.s
        self.prices = prices
        self.ruleset = ruleset
        self._users: dict[str, set[str]] | None = None  # company -> users, built at first need
        self._estimates: dict[tuple[str, int], set[int]] = {}  # (estimate id, partition) -> sources seen
        self.counts = CloseCounts()

    # ---- accounts by company (an index built on first need, then kept up to date) -------------

    def _companies_of(self, partition: int, month: Month) -> list[str]:
        """The partition's companies that exist by the end of `month` (`company_has_month`, as the
        batch path's `replay.month.companies_for_month`): a close runs days after the month, when
        companies that first appeared since are already here, and they have no invoice for it."""
        n = self.state.partitions
        out = []
        for cid in sorted(c for c in self.s.companies.raw if home_partition(c, n) == partition):
            if company_has_month(self.state.company(cid), month):
                out.append(cid)
        return out

    def users_of(self, cid: str) -> set[str]:
        if self._users is None:
            idx: dict[str, set[str]] = {}
            for key in self.s.accounts.raw:
                c, u = key.split(SEP, 1)
                idx.setdefault(c, set()).add(u)
            self._users = idx
        return self._users.get(cid, set())

    def account_seen(self, cid: str, uid: str) -> None:
        if self._users is not None:
            self._users.setdefault(cid, set()).add(uid)

    def reset(self) -> None:
        self._users = None

    # ---- markers -------------------------------------------------------------------------------

    def on_marker(self, ctl: dict, partition: int) -> str | None:
        """Record a routed close marker; the month to close now on `partition`, if complete."""
        month = str(Month.parse(ctl["month"]))
        n = int(ctl["partitions"])
        sp = int(ctl["source_partition"])
        key = f"{month}{SEP}{partition}"
        cur = self.s.closes.get(key)
        if cur is None:
            cur = {"seen": [], "n": n, "close_id": ctl.get("close_id", ""), "closed": False}
        if sp not in cur["seen"]:
            cur = {**cur, "seen": sorted([*cur["seen"], sp])}
            self.s.closes.put(key, cur)
        log.info(
            "event=close_marker month=%s partition=%d source_partition=%d seen=%d of=%d closed=%s",
            month, partition, sp, len(cur["seen"]), cur["n"], cur["closed"],
        )  # fmt: skip
        if not cur["closed"] and len(cur["seen"]) >= cur["n"]:
            return month
        return None

    def progress(self) -> dict[str, tuple[int, int, int]]:
        """month -> (markers seen over all partitions, markers expected, partitions closed)."""
        out: dict[str, list[int]] = {}
        for key, val in self.s.closes.raw.items():
            month = key.split(SEP)[0]
            agg = out.setdefault(month, [0, 0, 0])
            agg[0] += len(val["seen"])
            agg[1] += val["n"] * val["n"]
            agg[2] += 1 if val["closed"] else 0
        return {m: (a, b, c) for m, (a, b, c) in out.items()}

    # ---- close -----------------------------------------------------------------------------------

    def close(self, partition: int, month: str) -> Iterator[Emission]:
        """Close `month` on `partition`: decisions, company months, then the partition's done marker."""
        key = f"{month}{SEP}{partition}"
        rec = self.s.closes.get(key)
        close_id = rec.get("close_id", "") if rec else ""
        n = self.state.partitions
        companies = self._companies_of(partition, Month.parse(month))
        digests: list[str] = []
        accounts = 0
        for cid in companies:
            dgs = yield from self._company_month(cid, month, partition, close_id, None, None)
            digests.extend(dgs)
            accounts += len(dgs)
        stats = self.s.stats.get(str(partition)) or new_stats()
        counts = {
            "events_counted": stats["events"],
            "rejected": stats["rejected"],
            "duplicates_ignored": stats["duplicates"],
            "late_since_close": stats["late"],
        }
        done = partition_done_message(
            month, partition, n,
            close_id=close_id, companies=len(companies), accounts=accounts,
            checksum_=checksum_of_digests(digests), counts=counts, emitted_at=_now(),
        )  # fmt: skip
        yield str(partition).encode(), orjson.dumps(done), partition
        self.s.closes.put(key, {**(rec or {"seen": [], "n": n, "close_id": close_id}), "closed": True})
        self.state.mark_closed(partition, month)
        self.state.retire(partition, month)
        log.info(
            "event=close_done month=%s partition=%d companies=%d accounts=%d checksum=%s",
            month, partition, len(companies), accounts, done["checksum"],
        )  # fmt: skip

    def recompute(self, partition: int, aff: Affected) -> Iterator[Emission]:
        """A late event changed facts of `aff.company_id`: amend what changed in the closed months
        still inside their late window (a retired month's facts are gone: disputes settle it)."""
        retired = self.state.retired_through(partition)
        months = sorted(m for m in self.state.closed_months(partition) if m >= aff.floor and m > retired)
        cf = self.state.company(aff.company_id) if months else None
        for month in months:
            if cf is not None and not company_has_month(cf, Month.parse(month)):
                continue  # the company first appeared after that month: still no invoice for it
            rec = self.s.closes.get(f"{month}{SEP}{partition}") or {}
            users = None if aff.company_wide else aff.users
            yield from self._company_month(aff.company_id, month, partition, rec.get("close_id", ""), users, LATE_EVENT)

    # ---- the bill so far ----------------------------------------------------------------------------

    def on_estimate_marker(self, ctl: dict, partition: int) -> bool:
        """Record a routed estimate marker; True once `partition` has it from every source partition
        (then every event published before the request is folded here). Kept in memory only: an
        estimate is provisional, and one lost to a restart is asked for again by the next run."""
        key = (str(ctl["estimate_id"]), partition)
        seen = self._estimates.setdefault(key, set())
        if len(seen) >= int(ctl["partitions"]):
            return False  # done already: a repeated marker
        seen.add(int(ctl["source_partition"]))
        return len(seen) >= int(ctl["partitions"])

    def estimate(self, partition: int, ctl: dict) -> Iterator[Emission]:
        """The month's provisional decisions of the partition's companies at the marker's as-of
        time (projections.estimate), as `estimate` and `company_estimate` messages."""
        month = Month.parse(ctl["month"])
        as_of = str(ctl["as_of"])
        as_of_us = to_us(datetime.fromisoformat(as_of.replace("Z", "+00:00")))
        now = _now()
        for cid in self._companies_of(partition, month):
            cm, decider, rows = self._decided(cid, month, None)
            decisions = [decider.bulk.decision(shape.template, uid, evidence) for uid, shape, evidence, _ in rows]
            est = estimate_company(cm, decisions, as_of_us)
            for msg in estimate_messages(
                est, estimate_id=str(ctl["estimate_id"]), as_of=as_of, partition=partition, emitted_at=now
            ):
                yield cid.encode(), orjson.dumps(msg), None

    # ---- one company-month -------------------------------------------------------------------------

    def _decided(self, cid: str, month: Month, users: set[str] | None) -> tuple[CompanyMonth, StoredDecider, list[Row]]:
        """Every account of `users` (default: the company's) known by the month's end, by user:
        (user, shape, evidence, mask), decided by the bulk decider over the stored values
        (streams.stored_decide); `mask`: the user's report days over the months a report window
        reaches (History)."""
        st = self.state
        cf = st.company(cid)
        cm = company_month(cid, cf, month)
        decider = StoredDecider(company_decider(cm, self.prices, self.ruleset))
        end = cm.bounds.end_us
        uids = self.users_of(cid) if users is None else users
        pend = st.pending_activity(cid) if not cf.registered else {}
        hist = history_of(str(month))
        acc_get, act_get = self.s.accounts.raw.get, self.s.activity.raw.get
        mstr, first = hist.names[-1], hist.first
        this = SEP + mstr  # an account's key + this: its activity key of the month
        earlier = [  # the earlier months where the company has activity: elsewhere, nothing to look up
            (off, SEP + m)
            for off, m in zip(hist.offsets[:-1], hist.names[:-1], strict=True)
            if cid in st.companies_with_activity(m)
        ]
        pairs = list(zip(hist.offsets, hist.names, strict=True))
        prefix = cid + SEP
        decide = decider.decide
        known: list[str] = []  # the users decided
        shapes: list[StoredShape] = []
        masks: list[int] = []
        items: list[list] = []  # each account's evidence items, written as texts at once below
        for uid in sorted(uids):
            key = prefix + uid
            raw = acc_get(key)
            if raw is None or raw[0] is None or raw[0] >= end:  # not known by the month's end (known_by)
                continue
            a = act_get(key + this)
            mask = 0 if a is None else a[1] << first
            for off, m in earlier:
                r = act_get(key + m)
                if r is not None and r[1]:
                    mask |= r[1] << off
            if pend:
                for off, m in pairs:
                    p = pend.get((uid, m))
                    if p is not None and p.report_days:
                        mask |= p.report_days << off
                p = pend.get((uid, mstr))
                if p is not None:
                    a = encode_activity(*(p if a is None else decode_activity(a).merge(p)).to_tuple())
            shape, its = decide(raw, a)
            known.append(uid)
            shapes.append(shape)
            masks.append(mask)
            items.append(its)
        return cm, decider, list(zip(known, shapes, evidence_column(items, decider.tz), masks, strict=True))

    def _company_month(
        self, cid: str, month_s: str, partition: int, close_id: str, users: set[str] | None, reason: str | None
    ) -> Generator[Emission, None, list[str]]:
        """Decide and emit what differs from what was emitted; returns the digests of all decisions."""
        hist = history_of(month_s)
        month = hist.month
        cm, _, rows = self._decided(cid, month, users)
        hkey = f"{cid}{SEP}{month_s}"
        header = self.s.emitted.get(hkey)
        nb = header["b"] if header else max(1, len(rows) // BUCKET_ACCOUNTS + 1)
        versions = EmittedVersions(self.s.emitted, hkey, nb)
        digests: list[str] = []
        changed = 0
        key = cid.encode()
        encoder = DecisionEncoder(close_id=close_id, partition=partition, emitted_at=_now())
        # A close's first versions go out as decision_block messages; amendments one by one.
        blocks = DecisionBlocks(encoder, cid, month_s, PACK_BYTES) if reason is None and self.blocks else None
        firsts: list[tuple[tuple[int, dict[str, list]], str]] = []  # (bucket, user) of those in blocks
        added: list[tuple] = []  # what blocks.add_many takes, of each of them
        in_report, window, bucket = hist.in_report, hist.window, versions.bucket
        for uid, shape, evidence, mask in rows:
            pieces = shape.pieces
            if pieces is None:
                pieces = shape.pieces = encoder.pieces(shape.decision)
            bk = bucket(uid)
            prev = bk[1].get(uid)
            if prev is None and blocks is not None:  # a close's first version, most decisions
                added.append((pieces, shape.decision, uid, evidence, mask & window != 0))  # in_report, inlined
                firsts.append((bk, uid))
                continue
            version = 1 if prev is None else prev[0] + 1
            msg, dg = encoder.encode_with(
                pieces, uid, evidence, version=version,
                corrects_version=None if prev is None else prev[0],
                amend_reason=None if reason is None and prev is None else reason or LATE_EVENT,
                in_report=in_report(mask),
            )  # fmt: skip
            digests.append(dg)
            if prev is not None and prev[1] == dg:
                continue
            yield key, msg, None
            versions.put(bk, uid, version, dg)
            changed += 1
            if prev is None:
                self.counts.decisions += 1
            else:
                self._count_amendment(cid, uid, month_s, version, prev, reason)
        if blocks is not None:
            firsts_digests = blocks.add_many(added)
            digests.extend(firsts_digests)
            for value in blocks.done():
                yield key, value, None
            versions.put_firsts(firsts, firsts_digests)
            changed += len(firsts)
            self.counts.decisions += len(firsts)
        if users is not None:
            if not changed:
                return digests
            # Some decision changed: the invoice needs every decision of the company.
            cm, _, rows = self._decided(cid, month, None)
        versions.save()
        decisions = [shape.decision for _, shape, _, _ in rows]  # the invoice reads the verdicts' values
        masks = [mask for _, _, _, mask in rows]
        yield from self._company_message(cid, hist, cm, decisions, masks, header, nb, close_id, partition)
        return digests

    def _count_amendment(self, cid: str, uid: str, month_s: str, version: int, prev: list, reason: str | None) -> None:
        self.counts.amendments += 1
        log.info(
            "event=amendment company=%s user=%s month=%s version=%d corrects=%d reason=%s",
            cid, uid, month_s, version, prev[0], reason or LATE_EVENT,
        )  # fmt: skip

    def _company_message(
        self,
        cid: str,
        hist: History,
        cm: CompanyMonth,
        decisions: list[Decision],
        masks: list[int],
        header: dict | None,
        nb: int,
        close_id: str,
        partition: int,
    ) -> Iterator[Emission]:
        """The company_month message, when the invoice differs from the one emitted last."""
        month = hist.month
        inv = build_invoice(cm, decisions).to_json()
        idg = invoice_digest(inv)
        hkey = f"{cid}{SEP}{month}"
        if header is not None and header["id"] == idg:
            if header["b"] != nb:
                self.s.emitted.put(hkey, {**header, "b": nb})
            return
        version = 1 if header is None else header["iv"] + 1
        mau = mau_from_masks(month, hist.first, masks)
        msg = company_month_message(
            inv, mau, version=version, close_id=close_id, partition=partition, emitted_at=_now()
        )
        yield cid.encode(), orjson.dumps(msg), None
        self.s.emitted.put(hkey, {"iv": version, "id": idg, "b": nb})
        self.counts.company_months += 1
        if version > 1:
            log.info("event=company_month_amended company=%s month=%s version=%d", cid, month, version)
