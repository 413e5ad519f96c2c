"""A realistic, deterministic workload: NDJSON events for N companies and M accounts over K months.

`iter_events(companies, accounts, month, months=1, seed=0)` yields JSON-ready event dicts that all
pass `schemas.validate_event`, covering every event kind of the contract (docs/contract.md) and
the edge cases of the billing rules (docs/rules.md): boundary events in each
company's own time zone, plan changes on day 1 and day 2, trials ending on the last day and on day 1
of a month, malformed nonprofit tokens, amex in Brazil, guests from known and unknown home
companies, late and redelivered (duplicate) events.

Time line: `history_months` calendar months (default 2) before `month` in which companies register
and most accounts are provisioned, invited and claimed, then the `months` generated months.

Streaming: companies advance one local day at a time in lockstep; events are buffered only until
no company can still produce an earlier arrival, then emitted in arrival order (occurred_at, except
for the few late and duplicate events). Memory is about one day of events plus per-account state.

Determinism: one `random.Random` per company, seeded from the master seed; no `hash()`, no set
order. Same arguments, same bytes.
"""

from __future__ import annotations

import gc
import io
import re
from bisect import bisect_left, bisect_right
from calendar import monthrange
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import partial
from heapq import heappop, heappush
from math import sqrt
from operator import itemgetter
from random import Random
from typing import IO

import orjson

from projections.calendar import Month, zone
from schemas.events import ELIGIBLE_ORG_TYPES, EXCLUDED_ORG_TYPES

__all__ = ["iter_events", "write_ndjson", "Workload", "DEFAULT_HISTORY_MONTHS"]

DEFAULT_HISTORY_MONTHS = 2

# Time zones: (IANA name, weight, billing country). The first ones are forced onto some company each
# (for modest workloads) so the odd offsets (+05:30, +05:45, -03:30, +09:30, +13:45, +14, -11) show up.
ZONES: tuple[tuple[str, int, str], ...] = (
    ("UTC", 6, "US"),
    ("Europe/Amsterdam", 14, "NL"),
    ("America/Los_Angeles", 10, "US"),
    ("America/Sao_Paulo", 7, "BR"),
    ("Asia/Tokyo", 6, "JP"),
    ("Asia/Kolkata", 6, "IN"),
    ("Asia/Kathmandu", 1, "NP"),
    ("Pacific/Auckland", 3, "NZ"),
    ("America/St_Johns", 2, "CA"),
    ("Australia/Adelaide", 3, "AU"),
    ("America/New_York", 12, "US"),
    ("Europe/London", 8, "GB"),
    ("Pacific/Chatham", 1, "NZ"),
    ("Pacific/Kiritimati", 1, "KI"),
    ("Pacific/Pago_Pago", 1, "AS"),
    ("Europe/Berlin", 6, "DE"),
    ("Asia/Singapore", 3, "SG"),
)

# Activity classes of accounts: (name, share of accounts, day probability on a weekday,
# events per active day min..max, event mix as ((type, channel), weight) pairs).
_V_WEB = ("visit", "web")
_V_MOB = ("visit", "mobile")
_LOGIN = ("login", None)
_NV_WEB = ("notification_view", "web")
_NV_MOB = ("notification_view", "mobile")
_NV = ("notification_view", None)
_CHAT = ("chat_use", None)
_ADMIN = ("admin_panel_use", None)
_PUSH = ("push_notification_received", None)
_EMAIL = ("email_notification_received", None)

CLASSES: tuple[tuple[str, float, float, int, int, tuple], ...] = (
    (
        "heavy",
        0.13,
        0.85,
        8,
        24,
        (
            (_V_WEB, 18),
            (_V_MOB, 12),
            (_LOGIN, 8),
            (_CHAT, 25),
            (_NV_WEB, 8),
            (_NV_MOB, 6),
            (_NV, 2),
            (_PUSH, 12),
            (_EMAIL, 5),
            (_ADMIN, 1),
        ),
    ),
    (
        "regular",
        0.33,
        0.55,
        3,
        10,
        (
            (_V_WEB, 22),
            (_V_MOB, 14),
            (_LOGIN, 18),
            (_CHAT, 14),
            (_NV_WEB, 8),
            (_NV_MOB, 7),
            (_NV, 2),
            (_PUSH, 10),
            (_EMAIL, 5),
        ),
    ),
    (
        "light",
        0.27,
        0.12,
        1,
        3,
        ((_V_WEB, 30), (_V_MOB, 12), (_LOGIN, 30), (_NV_WEB, 8), (_NV_MOB, 5), (_PUSH, 10), (_EMAIL, 5)),
    ),
    ("notification_only", 0.08, 0.35, 1, 4, ((_NV_WEB, 15), (_NV_MOB, 15), (_NV, 10), (_PUSH, 35), (_EMAIL, 25))),
    ("admin_only", 0.02, 0.25, 1, 3, ((_ADMIN, 1),)),
    ("dormant", 0.17, 0.0, 0, 0, ()),
)
_N_CLASSES = len(CLASSES)
_CLASS_CUM = []
_acc = 0.0
for _c in CLASSES:
    _acc += _c[1]
    _CLASS_CUM.append(_acc)
_DORMANT = _N_CLASSES - 1
WEEKEND_FACTOR = 0.25

# Account lifecycle probabilities.
P_GUEST = 0.03  # account appears by an invite naming another home company, never provisioned
P_DIRECT_INVITE = 0.03  # invited without an account_provisioned first
P_INVITE = 0.86  # provisioned accounts that get invited
P_SSO_CLAIM = 0.03  # provisioned, never invited, claimed anyway (single sign-on)
P_CLAIM = 0.88  # invited accounts that claim
P_PROFILE = 0.45  # accounts with a profile_update soon after creation
P_FRONTLINE = 0.40  # of those: a frontline profile
P_LATER_PROFILE = 0.05  # a later profile_update during the period (employment or role change)
P_DEACTIVATE = 0.09  # accounts deactivated at some point in the period
P_REACTIVATE = 0.30  # of deactivated accounts
P_REDUNDANT = 0.05  # a second, no-op deactivate/reactivate minutes later
P_GUEST_KNOWN = 0.6  # guests whose home company is a generated company
P_LATE = 0.004  # events delivered late (minutes to days)
P_DUP = 0.003  # events delivered twice (same event_id, same content)

EMPLOYMENT = (("employee", 75), ("contractor", 12), ("volunteer", 8), ("other", 5))
FRONTLINE_ROLES = (("customer_facing", 35), ("backstage", 30), ("public_service", 10), ("medical", 15), ("other", 10))
DESK_ROLES = (("other", 70), ("backstage", 10), ("customer_facing", 10), ("medical", 5), ("public_service", 5))
PLANS = (("advanced", 45), ("enterprise", 25), ("premium", 30))
CARD_BRANDS = (("visa", 40), ("mastercard", 30), ("amex", 20), ("discover", 10))
ELIGIBLE_ORGS = ELIGIBLE_ORG_TYPES  # the contract's lists (schemas.events), not a copy
EXCLUDED_ORGS = EXCLUDED_ORG_TYPES

# Company scenario groups: forced variants first (one company each, in a seeded order), then random.
PLAN_FORCED = ("none", "day1", "day2", "mid", "initial", "last_day", "day1_midnight")
PLAN_RANDOM = (
    ("none", 35),
    ("initial", 40),
    ("mid", 10),
    ("day1", 5),
    ("day2", 5),
    ("last_day", 3),
    ("day1_midnight", 2),
)
TRIAL_FORCED = ("default", "explicit_mid", "explicit_last_day", "explicit_day1", "none")
TRIAL_RANDOM = (("none", 80), ("default", 8), ("explicit_mid", 6), ("explicit_last_day", 3), ("explicit_day1", 3))
NONPROFIT_FORCED = (
    "valid",
    "malformed_space",
    "malformed_bang",
    "excluded_religious",
    "valid_revoked",
    "valid_plain",
    "excluded",
    "valid_revoked_day1",
    "valid_revoked_last_day",
)
NONPROFIT_RANDOM = (
    ("none", 85),
    ("valid", 5),
    ("valid_revoked", 3),
    ("malformed_space", 2),
    ("malformed_bang", 1),
    ("excluded", 3),
    ("valid_plain", 1),
)
BILLING_FORCED = ("amex_BR", "invoice_po", "po_cleared", "card", "card_change", "none")
BILLING_RANDOM = (("none", 15), ("card", 60), ("invoice_po", 10), ("po_cleared", 5), ("card_change", 8), ("amex_BR", 2))
PUBLISHER_OFFSETS = (-5 * 3600, 2 * 3600, 5 * 3600 + 1800, -3 * 3600)  # fixed-offset publishers

_NAME_A = (
    "Acme",
    "Globex",
    "Nordvik",
    "Zürich",
    "São Bento",
    "Kōbe",
    "Müller",
    "Blue River",
    "Harbor",
    "Peak",
    "Lumen",
    "Initech",
    "Umbrella",
    "Vandelay",
    "Stark",
    "Oceanic",
    "Hooli",
    "Wonka",
    "Cyberdyne",
    "Tyrell",
    "Soylent",
    "Aperture",
    "Massive",
    "Gringotts",
    "Ollivander",
)
_NAME_B = (
    "Logistics",
    "Health",
    "Foods",
    "Retail",
    "Bank",
    "Care",
    "Works",
    "Labs",
    "Group",
    "Stichting",
    "Ltda",
    "K.K.",
    "Trust",
    "Hospital",
    "Transport",
    "Hotels",
    "Energy",
    "Foundation",
)

_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
_HMSZ = [x + "Z" for x in _HMS]
_DAY_PREFIX: dict[int, str] = {}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_K0 = itemgetter(0)
_K1 = itemgetter(1)
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_BITS = (4 << 76) | (2 << 62)


def _day_prefix(dn: int) -> str:
    p = _DAY_PREFIX.get(dn)
    if p is None:
        p = _DAY_PREFIX[dn] = date.fromordinal(_EPOCH_ORDINAL + dn).isoformat() + "T"
    return p


def format_z(t: int) -> str:
    """Epoch seconds as an RFC 3339 UTC string ('Z')."""
    dn, s = divmod(t, 86400)
    p = _DAY_PREFIX.get(dn) or _day_prefix(dn)
    return p + _HMSZ[s]


def _offset_str(off: int) -> str:
    sign = "+" if off >= 0 else "-"
    h, m = divmod(abs(off) // 60, 60)
    return f"{sign}{h:02d}:{m:02d}"


_OFFSET_STR: dict[int, str] = {}


def format_offset(t: int, off: int) -> str:
    """Epoch seconds as RFC 3339 local time with the given UTC offset (seconds): the same instant."""
    dn, s = divmod(t + off, 86400)
    p = _DAY_PREFIX.get(dn) or _day_prefix(dn)
    o = _OFFSET_STR.get(off)
    if o is None:
        o = _OFFSET_STR[off] = _offset_str(off)
    return p + _HMS[s] + o


def _weighted(rng: Random, pairs) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def parse_month(month: str) -> tuple[int, int]:
    """YYYY-MM in the contract's months (projections.calendar.Month.parse), as (year, month)."""
    m = Month.parse(month)
    return m.year, m.month


def _add_months(y: int, m: int, k: int) -> tuple[int, int]:
    n = y * 12 + (m - 1) + k
    return n // 12, n % 12 + 1


def _binom(random, gauss, n: int, p: float) -> int:
    if n <= 24:
        k = 0
        for _ in range(n):
            if random() < p:
                k += 1
        return k
    mu = n * p
    k = int(gauss(mu, sqrt(mu * (1.0 - p))) + 0.5)
    return 0 if k < 0 else (n if k > n else k)


class _Calendar:
    """Local dates of the whole period and, per zone, the epoch of each local midnight."""

    def __init__(self, month: str, months: int, history_months: int):
        y, m = parse_month(month)
        if months < 1:
            raise ValueError("months must be >= 1")
        if history_months < 0:
            raise ValueError("history_months must be >= 0")
        hy, hm = _add_months(y, m, -history_months)
        ey, em = _add_months(y, m, months)
        if (hy, hm) < (2000, 1) or (ey, em) > (2100, 1):
            raise ValueError("the generated months, history included, must lie within 2000-01 .. 2099-12")
        self.first = date(hy, hm, 1)
        self.gen_first = date(y, m, 1)
        end = date(ey, em, 1)
        self.days = (end - self.first).days
        self.dates = [self.first + timedelta(days=i) for i in range(self.days + 1)]
        self.G = (self.gen_first - self.first).days  # index of day 1 of the first generated month
        # month_first/month_last for each day index; the list of day-1 indices of generated months
        self.month_first = [0] * self.days
        self.month_last = [0] * self.days
        i = 0
        self.month_starts: list[int] = []
        while i < self.days:
            d = self.dates[i]
            n = monthrange(d.year, d.month)[1]
            self.month_starts.append(i)
            for j in range(i, i + n):
                self.month_first[j] = i
                self.month_last[j] = i + n - 1
            i += n
        self.gen_month_starts = [s for s in self.month_starts if s >= self.G]
        self.weekend = [d.weekday() >= 5 for d in self.dates]
        self._zones: dict[str, tuple[list[int], list[int]]] = {}

    def zone(self, name: str) -> tuple[list[int], list[int]]:
        """(epoch of local midnight for day 0..days, UTC offset at local noon for day 0..days-1)."""
        z = self._zones.get(name)
        if z is None:
            tz = zone(name)
            mids = []
            offs = []
            for d in self.dates:
                mids.append(int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()))
                noon = tz.utcoffset(datetime(d.year, d.month, d.day, 12))
                assert noon is not None  # a ZoneInfo knows the offset of every local time
                offs.append(int(noon.total_seconds()))
            z = self._zones[name] = (mids, offs)
        return z


class _Company:
    """One company's generator: advances one local day at a time, appending (arrival, event) pairs."""

    def __init__(self, wl: Workload, idx: int, seed: int, n_accounts: int, uid_base: int):
        self.wl = wl
        self.idx = idx
        self.cid = f"c-{idx + 1:05d}"
        self.rng = Random(seed)
        self.n = n_accounts
        self.uid_base = uid_base
        self.heap: list = []
        self.seq = 0
        self.next_acc = 0
        self.status = bytearray(n_accounts)  # 0 none, 1 exists (not claimed), 3 active+claimed, 4 deactivated
        self.claimed = bytearray(n_accounts)
        self.since = [0] * n_accounts
        self.members: list[list[int]] = [[] for _ in range(_N_CLASSES)]
        self.uids = [f"u-{uid_base + i + 1:07d}" for i in range(n_accounts)]
        self.unknown_homes: list[str] = []
        self.prov_by_day: dict[int, int] = {}

    # -- setup ----------------------------------------------------------------------------------

    def setup(self, zone: str, late: bool, plan_v: str, trial_v: str, np_v: str, bill_v: str) -> None:
        wl, cal, rng = self.wl, self.wl.cal, self.rng
        self.zone = zone
        self.country = wl.zone_country[zone]
        self.mid, self.off = cal.zone(zone)
        G, D = cal.G, cal.days
        # registration day: history companies in the first part of the history, late ones during
        # the generated months (new customers)
        if late or G == 0:
            lo = G if late else 0
            self.reg_day = rng.randrange(lo, max(lo + 1, min(D - 3, lo + (D - lo) * 2 // 3)))
        else:
            self.reg_day = rng.randrange(0, max(1, G // 2))
        self.reg_t = self.at(self.reg_day, rng.randrange(8 * 3600, 17 * 3600))
        # publisher time style: most 'Z', some zone-local offsets, some fixed-offset publishers
        r = rng.random()
        if r < 0.65:
            self.loc_p, self.loc_fixed = 0.0, None
        elif r < 0.90:
            self.loc_p, self.loc_fixed = rng.choice((0.3, 0.6, 1.0)), None
        else:
            self.loc_p, self.loc_fixed = 0.5, rng.choice(PUBLISHER_OFFSETS)
        name = f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)}"
        self.name = name
        reg = {"timezone": zone}
        if rng.random() < 0.9:
            reg["name"] = name
        self.push_company(self.reg_t, "company_registered", reg, "signup")
        t0 = self.reg_t + 60
        self._setup_plan(plan_v, t0)
        self._setup_trial(trial_v, late)
        self._setup_nonprofit(np_v)
        self._setup_billing(bill_v)
        self._setup_provisioning(late)

    def at(self, day: int, sec: int) -> int:
        """Epoch of local (day index, seconds since local midnight), kept inside that local day."""
        mid = self.mid
        t = mid[day] + sec
        end = mid[day + 1] - 1
        return t if t < end else end

    def day_of(self, t: int) -> int:
        return bisect_right(self.mid, t) - 1

    def push(self, t: int, action: int, a: int, payload) -> None:
        self.seq += 1
        heappush(self.heap, (t, self.seq, action, a, payload))

    def push_company(self, t: int, kind: str, extra: dict | None, source: str | None) -> None:
        self.push(t, _A_COMPANY, -1, (kind, extra, source))

    def _gen_day(self, k: int | None = None) -> int:
        """Day 1 of a generated month (random one unless k)."""
        starts = self.wl.cal.gen_month_starts
        return starts[k] if k is not None else self.rng.choice(starts)

    def _setup_plan(self, v: str, t0: int) -> None:
        rng, cal = self.rng, self.wl.cal
        plan = None
        if v != "none" and (v == "initial" or rng.random() < 0.6):
            plan = _weighted(rng, PLANS)
            self.push_company(t0 + rng.randrange(0, 600), "plan_changed", {"plan": plan}, "admin-console")
        if v in ("none", "initial"):
            return
        new = rng.choice([p for p, _ in PLANS if p != (plan or "premium")])
        g = self._gen_day()
        if v == "day1":
            t = self.at(g, rng.randrange(8 * 3600, 12 * 3600))
        elif v == "day1_midnight":
            t = self.at(g, 30)
        elif v == "day2":
            t = self.at(g + 1, rng.randrange(9 * 3600, 17 * 3600))
        elif v == "last_day":
            t = self.at(cal.month_last[g], 86400 - 20)
        else:  # mid
            t = self.at(g + rng.randrange(7, 25), rng.randrange(9 * 3600, 18 * 3600))
        if t <= self.reg_t:
            t = self.reg_t + 3600
        self.push_company(t, "plan_changed", {"plan": new}, "admin-console")

    def _setup_trial(self, v: str, late: bool) -> None:
        rng, cal = self.rng, self.wl.cal
        G = cal.G
        if v == "none":
            if not late or rng.random() < 0.3:
                return
            v = "default"
        if late:
            start = self.reg_day
        else:
            start = max(self.reg_day, G - rng.randrange(5, 26))
        last = None
        if v == "explicit_mid":
            last = G + rng.randrange(9, 20)
            start = max(self.reg_day, min(start, last - 20))
        elif v == "explicit_last_day":
            last = cal.month_last[G]
            start = max(self.reg_day, G - 10)
        elif v == "explicit_day1":
            last = cal.gen_month_starts[-1]
            start = max(self.reg_day, last - rng.randrange(20, 31))
        if last is not None and last < start:
            last = None  # the company registers too late for this variant: default length
        t = self.at(start, rng.randrange(9 * 3600, 17 * 3600))
        if t <= self.reg_t:
            t = self.reg_t + rng.randrange(120, 3600)
        extra = {} if last is None else {"last_trial_day": cal.dates[last].isoformat()}
        self.push_company(t, "trial_started", extra, "sales")

    def _token(self, v: str) -> str:
        rng = self.rng
        ascii_name = re.sub(r"[^A-Za-z0-9]", "", self.name)
        core = f"{rng.randrange(100, 1000)}{rng.choice('abcdefghjkmnpqrstuvwxyz')}{rng.randrange(1000, 10000)}"
        if v == "valid_plain":
            return core
        if v == "malformed_space":
            return f"{core} @{self.name}"
        if v == "malformed_bang":
            return f"{core}@{ascii_name}!"
        sep = rng.choice(("", "", ".", "_", "-"))
        return f"{core}@{ascii_name[:12]}{sep}{ascii_name[12:] or 'Org'}" if sep else f"{core}@{ascii_name}"

    def _setup_nonprofit(self, v: str) -> None:
        if v == "none":
            return
        rng, cal = self.rng, self.wl.cal
        if v.startswith("excluded"):
            org = "religious" if v == "excluded_religious" else rng.choice(EXCLUDED_ORGS)
        else:
            org = rng.choice(ELIGIBLE_ORGS)
        day = rng.randrange(self.reg_day, max(self.reg_day + 1, min(cal.days - 1, max(cal.G, self.reg_day + 5))))
        t = self.at(day, rng.randrange(9 * 3600, 17 * 3600))
        if t <= self.reg_t:
            t = self.reg_t + 600
        self.push_company(
            t, "nonprofit_verified", {"techsoup_token": self._token(v), "organization_type": org}, "techsoup-bridge"
        )
        if v.startswith("valid_revoked"):
            g = self._gen_day()
            if v.endswith("day1"):
                rd = g
            elif v.endswith("last_day"):
                rd = cal.month_last[g]
            else:
                rd = g + rng.randrange(5, 25)
            rt = self.at(rd, rng.randrange(9 * 3600, 17 * 3600))
            if rt <= t:
                rt = t + 86400
            self.push_company(rt, "nonprofit_revoked", {}, "techsoup-bridge")

    def _setup_billing(self, v: str) -> None:
        if v == "none":
            return
        rng = self.rng
        t = self.reg_t + rng.randrange(600, 3 * 86400)
        country = self.country
        src = "billing-service"
        if v == "amex_BR":
            self.push_company(
                t,
                "billing_profile_updated",
                {"payment_method": "card", "card_brand": "amex", "billing_country": "BR"},
                src,
            )
            return
        if v in ("card", "card_change"):
            brand = _weighted(rng, CARD_BRANDS)
            if brand == "amex" and country == "BR" and rng.random() < 0.7:
                brand = "visa"
            self.push_company(
                t,
                "billing_profile_updated",
                {"payment_method": "card", "card_brand": brand, "billing_country": country},
                src,
            )
            if v == "card_change":
                t2 = self.at(self._gen_day() + rng.randrange(0, 20), rng.randrange(9 * 3600, 17 * 3600))
                self.push_company(
                    max(t2, t + 60),
                    "billing_profile_updated",
                    {"payment_method": "card", "card_brand": rng.choice(("visa", "mastercard"))},
                    src,
                )
            return
        po = f"PO-{self.wl.cal.first.year}-{rng.randrange(1, 10000):04d}"
        first = {"payment_method": "invoice", "billing_country": country, "po_number": po}
        self.push_company(t, "billing_profile_updated", first, src)
        t2 = self.at(self._gen_day() + rng.randrange(0, 25), rng.randrange(9 * 3600, 17 * 3600))
        t2 = max(t2, t + 60)
        if v == "po_cleared":
            self.push_company(t2, "billing_profile_updated", {"po_number": None}, src)
        else:
            self.push_company(
                t2,
                "billing_profile_updated",
                {"po_number": f"PO-{rng.randrange(1, 10000):04d}/{rng.randrange(1, 99)}"},
                src,
            )

    def _setup_provisioning(self, late: bool) -> None:
        """How many account slots open on each local day (bulk import at registration, then growth)."""
        rng, cal = self.rng, self.wl.cal
        G, D, n = cal.G, cal.days, self.n
        r0 = self.reg_day
        counts: dict[int, int] = {}
        gen_starts = cal.gen_month_starts
        for i in range(n):
            r = rng.random()
            if i == 0 or r < 0.45:
                d = r0  # bulk import (HRIS sync) on the registration day
            elif late or r0 + 1 >= G:
                d = rng.randrange(r0, D)
            elif r < 0.85:
                d = rng.randrange(r0, G)  # history: most accounts exist before the generated months
            elif r < 0.89:
                d = rng.choice(gen_starts)  # provisioned on day 1 of a generated month
            elif r < 0.92:
                d = rng.choice(gen_starts) + 1  # on day 2
                d = d if d < D else D - 1
            else:
                d = rng.randrange(G, D)
            counts[d] = counts.get(d, 0) + 1
        self.prov_by_day = counts

    # -- emission -------------------------------------------------------------------------------

    def _ts(self, t: int, day: int) -> str:
        if self.loc_p and self.rng.random() < self.loc_p:
            return format_offset(t, self.loc_fixed if self.loc_fixed is not None else self.off[day])
        return format_z(t)

    def _eid(self) -> str:
        h = ((self.rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS).to_bytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _deliver(self, t: int, ev: dict, out: list, r: float | None = None) -> None:
        if r is None:
            r = self.rng.random()
        if r >= P_LATE + P_DUP:
            out.append((t, ev))
        elif r < P_LATE:
            out.append((t + self._delay(), ev))
        else:
            out.append((t, ev))
            out.append((t + self._redelivery_delay(), dict(ev)))

    def _delay(self) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            return rng.randrange(60, 3600)  # minutes
        if r < 0.85:
            return rng.randrange(3600, 86400)  # hours
        return rng.randrange(86400, 4 * 86400)  # days

    def _redelivery_delay(self) -> int:
        r = self.rng.random()
        return self.rng.randrange(1, 120) if r < 0.7 else self.rng.randrange(120, 6 * 3600)

    def emit(self, t: int, day: int, kind: str, a: int, extra: dict | None, source: str | None, out: list) -> None:
        ev = {"event_id": self._eid(), "type": kind, "occurred_at": self._ts(t, day), "company_id": self.cid}
        if a >= 0:
            ev["user_id"] = self.uids[a]
        if extra:
            ev.update(extra)
        if source:
            ev["source"] = source
        self._deliver(t, ev, out)

    # -- a day ----------------------------------------------------------------------------------

    def run_day(self, day: int, out: list) -> None:
        if day < self.reg_day:
            return
        k = self.prov_by_day.pop(day, 0)
        if k:
            self._provision(day, k)
        heap = self.heap
        end = self.mid[day + 1]
        while heap and heap[0][0] < end:
            t, _, action, a, payload = heappop(heap)
            _HANDLERS[action](self, t, day, a, payload, out)
        self._activity(day, out)
        cal = self.wl.cal
        if cal.month_last[day] == day or (cal.month_first[day] == day and day > self.reg_day):
            self._boundary(day, out)

    def _provision(self, day: int, k: int) -> None:
        rng = self.rng
        start = self.next_acc
        self.next_acc = start + k
        if day == self.reg_day:
            t = self.reg_t + rng.randrange(300, 1800)
            bulk = k > 3
        else:
            t = self.at(day, rng.randrange(7 * 3600, 12 * 3600))
            bulk = False
        end = self.mid[day + 1] - 60
        for a in range(start, start + k):
            t += rng.randrange(1, 5) if bulk else rng.randrange(60, 1800)
            if t >= end:
                t = end - rng.randrange(0, 600)
            r = rng.random()
            if r < P_GUEST:
                self.push(t, _A_INVITE, a, "guest")
            elif r < P_GUEST + P_DIRECT_INVITE:
                self.push(t, _A_INVITE, a, None)
            else:
                self.push(t, _A_PROVISION, a, None)

    def _create(self, t: int, a: int) -> None:
        """First event of account `a` at t: class, profile, deactivation plan."""
        rng = self.rng
        self.status[a] = 1
        self.since[a] = t
        r = rng.random()
        c = 0
        while c < _DORMANT and r >= _CLASS_CUM[c]:
            c += 1
        self.members[c].append(a)
        if rng.random() < P_PROFILE:
            self.push(t + rng.randrange(60, 3 * 86400), _A_PROFILE, a, self._profile())
        cal = self.wl.cal
        if rng.random() < P_LATER_PROFILE:
            d = rng.randrange(max(cal.G, self.day_of(t) + 1), cal.days) if self.day_of(t) + 1 < cal.days else None
            if d is not None:
                self.push(self.at(d, rng.randrange(8 * 3600, 18 * 3600)), _A_PROFILE, a, self._later_profile())
        if rng.random() < P_DEACTIVATE:
            cd = self.day_of(t)
            lo = max(cd + 1, cal.G - 10)
            if lo < cal.days:
                d = rng.randrange(lo, cal.days)
                r = rng.random()
                if r < 0.2:  # last day of its month, just before midnight
                    dt = self.at(cal.month_last[d], 86400 - rng.randrange(5, 90))
                elif r < 0.35 and cal.month_first[d] > cd:  # day 1, just after midnight or in the morning
                    d = cal.month_first[d]
                    dt = self.at(d, rng.choice((rng.randrange(5, 120), rng.randrange(8 * 3600, 11 * 3600))))
                else:
                    dt = self.at(d, rng.randrange(8 * 3600, 19 * 3600))
                if dt > t:
                    self.push(dt, _A_DEACT, a, 0)

    def _profile(self) -> dict:
        rng = self.rng
        p: dict = {}
        if rng.random() < P_FRONTLINE:
            p["role_category"] = _weighted(rng, FRONTLINE_ROLES)
            if rng.random() < 0.7:
                p["away_from_desk_pct"] = rng.choice((50, 60, 75, 80, 90, 100, 49, rng.randrange(50, 101)))
            if rng.random() < 0.6:
                p["hourly_paid"] = rng.random() < 0.7
            if rng.random() < 0.5:
                p["has_email"] = rng.random() < 0.6
        else:
            if rng.random() < 0.8:
                p["role_category"] = _weighted(rng, DESK_ROLES)
            if rng.random() < 0.6:
                p["away_from_desk_pct"] = rng.choice((0, 5, 10, 20, 30, 40))
            if rng.random() < 0.4:
                p["hourly_paid"] = False
            if rng.random() < 0.4 or not p:
                p["has_email"] = True
        return p

    def _later_profile(self) -> dict:
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            return {"employment": _weighted(rng, EMPLOYMENT)}
        if r < 0.8:
            return {"role_category": _weighted(rng, FRONTLINE_ROLES), "hourly_paid": rng.random() < 0.5}
        return {"away_from_desk_pct": rng.randrange(0, 101)}

    def _guest_home(self, t: int) -> str:
        rng = self.rng
        wl = self.wl
        if rng.random() < P_GUEST_KNOWN:
            # a company registered at least a day before: its events have been seen
            k = bisect_left(wl.reg_times, t - 86400)
            for _ in range(4):
                if k <= 0:
                    break
                j = wl.reg_order[rng.randrange(0, k)]
                if j != self.idx:
                    return wl.cids[j]
        if self.unknown_homes and rng.random() < 0.2:
            return rng.choice(self.unknown_homes)  # a second guest from the same unknown company
        h = f"ext-{rng.getrandbits(32):08x}"
        self.unknown_homes.append(h)
        return h

    def _activity(self, day: int, out: list) -> None:
        """The day's sessions: per activity class, a binomial draw of its active accounts."""
        rng = self.rng
        random = rng.random
        status = self.status
        since = self.since
        uids = self.uids
        mid0 = self.mid[day]
        day_end = self.mid[day + 1] - 1
        factor = WEEKEND_FACTOR if self.wl.cal.weekend[day] else 1.0
        scale = self.wl.activity
        off = (self.loc_fixed if self.loc_fixed is not None else self.off[day]) if self.loc_p else 0
        for c in range(_DORMANT):
            mem = self.members[c]
            n = len(mem)
            if not n:
                continue
            _, _, p_day, lo, hi, _mix = CLASSES[c]
            k = _binom(random, rng.gauss, n, p_day * factor)
            if not k:
                continue
            picked = rng.sample(mem, k) if k < n else mem
            table = _MIX[c]
            span = hi - lo + 1
            for a in picked:
                if status[a] != 3:
                    continue
                t = mid0 + 25200 + int(random() * 39600)  # session starts 07:00-18:00 local
                s = since[a]
                if t <= s:
                    t = s + 60
                nev = lo + int(random() * span)
                if scale != 1.0:
                    nev = max(1, int(nev * scale + random()))
                self._session(uids[a], table, t, nev, day_end, off, out)

    def _session(self, uid: str, table: list, t: int, nev: int, day_end: int, off: int, out: list) -> None:
        """One account's session: up to `nev` events from `t` until the day ends, a few of them late
        or duplicated (`_deliver`). The hot loop: names bound locally, one random draw per choice."""
        rng = self.rng
        random = rng.random
        getrandbits = rng.getrandbits
        cid = self.cid
        loc_p = self.loc_p
        p_out = P_LATE + P_DUP
        append = out.append
        for _ in range(nev):
            kind, ch = table[getrandbits(10)]
            t += 20 + int(random() * 1500)
            if t >= day_end:
                break
            h = ((getrandbits(128) & _VERSION_MASK) | _VERSION_BITS).to_bytes(16).hex()
            if loc_p and random() < loc_p:
                ts = format_offset(t, off)
            else:
                dn, sec = divmod(t, 86400)
                ts = (_DAY_PREFIX.get(dn) or _day_prefix(dn)) + _HMSZ[sec]
            ev = {
                "event_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                "type": kind,
                "occurred_at": ts,
                "company_id": cid,
                "user_id": uid,
            }
            if ch is not None:
                ev["channel"] = ch
            r = random()
            if r >= p_out:
                append((t, ev))
            else:
                self._deliver(t, ev, out, r)

    def _boundary(self, day: int, out: list) -> None:
        """A few events just before local midnight of a month's last day / just after day 1 begins."""
        rng = self.rng
        cands = self.members[0] + self.members[1]
        if not cands:
            return
        last = self.wl.cal.month_last[day] == day
        for _ in range(min(3, 1 + len(cands) // 50)):
            for _try in range(5):
                a = rng.choice(cands)
                if self.status[a] == 3:
                    break
            else:
                continue
            if last:
                t = self.at(day, 86400 - 30 + rng.randrange(0, 25))
                kind, extra = rng.choice(
                    (
                        ("login", None),
                        ("visit", {"channel": "web"}),
                        ("visit", {"channel": "mobile"}),
                        ("chat_use", None),
                    )
                )
            else:
                t = self.at(day, 10 + rng.randrange(0, 20))
                kind, extra = rng.choice(
                    (
                        ("visit", {"channel": "mobile"}),
                        ("chat_use", None),
                        ("login", None),
                        ("notification_view", {"channel": "mobile"}),
                    )
                )
            if t > self.since[a]:
                self.emit(t, day, kind, a, extra, None, out)
        # notification-only account reading a notification right at the edge: never billing-active
        nmem = self.members[3]
        if nmem:
            a = rng.choice(nmem)
            if self.status[a] == 3:
                t = self.at(day, 86400 - 15 if last else 5)
                if t > self.since[a]:
                    self.emit(t, day, "notification_view", a, None, None, out)


def _h_company(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    kind, extra, source = payload
    c.emit(t, day, kind, -1, extra, source, out)


def _h_provision(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    rng = c.rng
    c.emit(
        t,
        day,
        "account_provisioned",
        a,
        {"employment": _weighted(rng, EMPLOYMENT)} if rng.random() < 0.7 else None,
        "hris-sync",
        out,
    )
    c._create(t, a)
    r = rng.random()
    if r < P_INVITE:
        if rng.random() < 0.4:
            lag = rng.randrange(60, 4 * 3600)  # same day
        else:
            lag = rng.randrange(86400, 14 * 86400)
        c.push(t + lag, _A_INVITE, a, None)
    elif r < P_INVITE + P_SSO_CLAIM:
        c.push(t + rng.randrange(3600, 10 * 86400), _A_CLAIM, a, None)


def _h_invite(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    rng = c.rng
    if c.status[a] == 4:
        return  # deactivated before the invite went out
    extra = None
    if payload == "guest":
        extra = {"guest_home_company_id": c._guest_home(t)}
    c.emit(t, day, "invite", a, extra, "admin-console", out)
    if c.status[a] == 0:
        c._create(t, a)
    if rng.random() < P_CLAIM:
        r = rng.random()
        if r < 0.35:
            lag = rng.randrange(120, 6 * 3600)
        elif r < 0.9:
            lag = rng.randrange(6 * 3600, 5 * 86400)
        else:
            lag = rng.randrange(5 * 86400, 30 * 86400)
        c.push(t + lag, _A_CLAIM, a, None)


def _h_claim(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    if c.status[a] == 4 or c.claimed[a]:
        return
    c.emit(t, day, "claim", a, None, "identity", out)
    c.claimed[a] = 1
    c.status[a] = 3
    c.since[a] = t


def _h_deact(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    rng = c.rng
    if c.status[a] == 4 and not payload:
        return
    c.emit(t, day, "deactivate", a, None, "admin-console", out)
    if payload:
        return  # the redundant second deactivate: a no-op by R1
    c.status[a] = 4
    if rng.random() < P_REDUNDANT:
        c.push(t + rng.randrange(60, 7200), _A_DEACT, a, 1)
    if rng.random() < P_REACTIVATE:
        cal = c.wl.cal
        d = day + rng.randrange(2, 40)
        if d < cal.days:
            if rng.random() < 0.25 and cal.month_first[d] > day:
                d = cal.month_first[d]  # reactivated on day 1: full month again
            c.push(c.at(d, rng.randrange(8 * 3600, 18 * 3600)), _A_REACT, a, 0)


def _h_react(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    rng = c.rng
    if c.status[a] != 4 and not payload:
        return
    c.emit(t, day, "reactivate", a, None, "admin-console", out)
    if payload:
        return
    c.status[a] = 3 if c.claimed[a] else 1
    c.since[a] = t
    if rng.random() < P_REDUNDANT:
        c.push(t + rng.randrange(60, 7200), _A_REACT, a, 1)


def _h_profile(c: _Company, t: int, day: int, a: int, payload, out: list) -> None:
    c.emit(t, day, "profile_update", a, payload, "hris-sync", out)


_A_COMPANY, _A_PROVISION, _A_INVITE, _A_CLAIM, _A_DEACT, _A_REACT, _A_PROFILE = range(7)
_HANDLERS = (_h_company, _h_provision, _h_invite, _h_claim, _h_deact, _h_react, _h_profile)

_TABLE_BITS = 10


def _mix_table(mix) -> list:
    """A 2**_TABLE_BITS-entry lookup table of (type, channel) by weight: one getrandbits per event."""
    if not mix:
        return []
    size = 1 << _TABLE_BITS
    total = sum(w for _, w in mix)
    table: list = []
    acc = 0
    for m, w in mix:
        acc += w
        table.extend([m] * (round(acc * size / total) - len(table)))
    return table


_MIX = [_mix_table(c[5]) for c in CLASSES]


def _company_sizes(rng: Random, companies: int, accounts: int) -> list[int]:
    """Skewed sizes (shifted Pareto, alpha 1.1, capped): a few big, many small; each >= 1, summing to
    `accounts`. With 50 companies and 5000 accounts: median ~30, several below 10, the biggest ~1000-2000."""
    weights = [min(60.0, rng.paretovariate(1.1) - 0.97) for _ in range(companies)]
    total = sum(weights)
    extra = accounts - companies
    raw = [w / total * extra for w in weights]
    sizes = [1 + int(x) for x in raw]
    rest = accounts - sum(sizes)
    order = sorted(range(companies), key=lambda i: (-(raw[i] - int(raw[i])), i))
    for i in order[:rest]:
        sizes[i] += 1
    return sizes


class Workload:
    """The plan of a whole workload; `events()` streams it."""

    def __init__(
        self,
        companies: int,
        accounts: int,
        month: str,
        months: int = 1,
        seed: int = 0,
        history_months: int = DEFAULT_HISTORY_MONTHS,
        activity: float = 1.0,
    ):
        if companies < 1:
            raise ValueError("companies must be >= 1")
        if accounts < companies:
            raise ValueError("accounts must be >= companies (every company has at least one account)")
        if activity < 0:
            raise ValueError("activity must be >= 0")
        self.cal = _Calendar(month, months, history_months)
        self.activity = float(activity)
        self.zone_country = {z: c for z, _, c in ZONES}
        rng = Random(seed)
        self.sizes = _company_sizes(rng, companies, accounts)
        self.cids = [f"c-{i + 1:05d}" for i in range(companies)]

        def assign(forced, random_pairs):
            order = list(range(companies))
            rng.shuffle(order)
            out = [""] * companies
            for pos, i in enumerate(order):
                out[i] = forced[pos] if pos < len(forced) else _weighted(rng, random_pairs)
            return out

        zone_forced = tuple(z for z, _, _ in ZONES[:10])
        zones = assign(zone_forced, tuple((z, w) for z, w, _ in ZONES))
        plans = assign(PLAN_FORCED, PLAN_RANDOM)
        trials = assign(TRIAL_FORCED, TRIAL_RANDOM)
        nps = assign(NONPROFIT_FORCED, NONPROFIT_RANDOM)
        bills = assign(BILLING_FORCED, BILLING_RANDOM)
        # ~6% of companies (none when fewer than 8) register during the generated months
        late = [companies >= 8 and rng.random() < 0.06 for _ in range(companies)]
        seeds = [rng.getrandbits(64) for _ in range(companies)]
        self.companies: list[_Company] = []
        base = 0
        for i in range(companies):
            c = _Company(self, i, seeds[i], self.sizes[i], base)
            base += self.sizes[i]
            self.companies.append(c)
        for i, c in enumerate(self.companies):
            c.setup(zones[i], late[i], plans[i], trials[i], nps[i], bills[i])
        order = sorted(range(companies), key=lambda i: (self.companies[i].reg_t, i))
        self.reg_order = order
        self.reg_times = [self.companies[i].reg_t for i in order]
        # after local day i of every company, nothing earlier than this can still be generated
        used = sorted(set(zones))
        mids = [self.cal.zone(z)[0] for z in used]
        self.flush_at = [min(m[i + 1] for m in mids) for i in range(self.cal.days)]

    def _chunks(self) -> Iterator[list]:
        """Lists of (arrival, event) in arrival order, one per flushed day. A workload streams once."""
        pending: list = []
        comps = self.companies
        flush_at = self.flush_at
        for day in range(self.cal.days):
            # The cyclic GC would otherwise rescan the per-account state and the day's buffer every
            # few thousand allocations (generation slows down ~40% at 50k accounts); nothing here
            # makes reference cycles. It is paused only while a day is generated, never while the
            # caller runs, so the caller's collections still happen, once per day at most.
            paused = gc.isenabled()
            if paused:
                gc.disable()
            try:
                for c in comps:
                    c.run_day(day, pending)
                pending.sort(key=_K0)
                cut = bisect_left(pending, flush_at[day], key=_K0)
                chunk = pending[:cut]
                del pending[:cut]
            finally:
                if paused:
                    gc.enable()
            if chunk:
                yield chunk
        if pending:
            pending.sort(key=_K0)
            yield pending

    def events(self) -> Iterator[dict]:
        """The events as JSON-ready dicts, in arrival order."""
        for chunk in self._chunks():
            yield from map(_K1, chunk)

    def ndjson_blocks(self) -> Iterator[bytes]:
        """The same stream as NDJSON bytes, one block per flushed day: the fast path for files."""
        for chunk in self._chunks():
            yield _ndjson_block(list(map(_K1, chunk)))

    def write(self, fp: IO[bytes]) -> int:
        """Write the workload as NDJSON to a binary file; returns the number of lines."""
        n = 0
        for chunk in self._chunks():
            for i in range(0, len(chunk), 65536):
                fp.write(_ndjson_block(list(map(_K1, chunk[i : i + 65536]))))
            n += len(chunk)
        return n


_DUMPS = partial(orjson.dumps, option=orjson.OPT_APPEND_NEWLINE)


def _ndjson_block(events: list) -> bytes:
    """NDJSON of a list of dicts. Joined 16 at a time: thousands of live orjson results at once
    (each allocated large, then shrunk) make malloc ~10x slower than the encoding itself."""
    dumps = _DUMPS
    return b"".join([b"".join(map(dumps, events[i : i + 16])) for i in range(0, len(events), 16)])


def iter_events(
    companies: int,
    accounts: int,
    month: str,
    months: int = 1,
    seed: int = 0,
    history_months: int = DEFAULT_HISTORY_MONTHS,
    activity: float = 1.0,
) -> Iterator[dict]:
    """Stream the workload's events as JSON-ready dicts, in arrival order (see module docstring).

    `activity` scales the number of activity events per active account-day (1.0: ~40-60 events per
    account per month).
    """
    return Workload(companies, accounts, month, months, seed, history_months, activity).events()


def write_ndjson(events: Iterable[dict], fp: IO, chunk: int = 8192) -> int:
    """Write one compact JSON object per line with orjson; returns the number of lines written."""
    write = None
    if isinstance(fp, io.TextIOBase):
        raw = getattr(fp, "buffer", None)
        if raw is not None:
            fp.flush()
            write = raw.write
        else:

            def write(b: bytes, _w=fp.write) -> None:
                _w(b.decode())

    if write is None:
        write = fp.write
    n = 0
    buf: list[dict] = []
    for ev in events:
        buf.append(ev)
        if len(buf) >= chunk:
            write(_ndjson_block(buf))
            n += len(buf)
            buf = []
    if buf:
        write(_ndjson_block(buf))
        n += len(buf)
    return n
