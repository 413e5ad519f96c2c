"""Facts: what the rules need to know about accounts and companies, merged without order.

Every merge here is associative, commutative and idempotent (day bitmasks OR-ed, earliest evidence
kept by min, events kept as sets keyed by `event_id`). That is what lets at-least-once delivery,
redelivery after a crash and out-of-order arrival give the same bill, and what lets the batch path
build the same facts with one DuckDB query.

Keys: activity facts per (company, user, local month); account facts per (company, user);
company facts per company. Instants are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from zoneinfo import ZoneInfo

from projections.calendar import Month, local_date, to_us

# Which activity kinds count for what. R2: billing-active; R14: the reports' MAU.
BILLING_ACTIVITY = frozenset({"login", "visit", "admin_panel_use", "chat_use"})
REPORTING_ACTIVITY = frozenset({"visit", "login", "notification_view", "chat_use"})
NOTIFICATION_ACTIVITY = frozenset({"notification_view", "push_notification_received", "email_notification_received"})
ACCOUNT_EVENTS = frozenset({"account_provisioned", "invite", "claim", "deactivate", "reactivate", "profile_update"})
COMPANY_EVENTS = frozenset(
    {
        "company_registered",
        "plan_changed",
        "trial_started",
        "nonprofit_verified",
        "nonprofit_revoked",
        "billing_profile_updated",
    }
)
# Fields of account and company events the rules read; everything else stays in the archive only.
RULE_FIELDS = {
    "account_provisioned": ("employment",),
    "invite": ("guest_home_company_id",),
    "profile_update": ("employment", "away_from_desk_pct", "hourly_paid", "has_email", "role_category"),
    "company_registered": ("timezone",),
    "plan_changed": ("plan",),
    "trial_started": ("last_trial_day", "source"),
    "nonprofit_verified": ("techsoup_token", "organization_type"),
    "billing_profile_updated": ("payment_method", "card_brand", "billing_country", "po_number"),
}
DERIVED_TRIAL_SOURCE = "seatledger.R5"
DERIVED_TRIAL_PREFIX = "derived-trial:"

Evidence = tuple[int, str, str]  # (occurred_at_us, event_id, type): ordered by time, then id


def _min(a: Evidence | None, b: Evidence | None) -> Evidence | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


@dataclass(slots=True)
class MonthActivity:
    """One account's activity in one local month: which days, and the earliest proof of each kind."""

    bill_days: int = 0  # bit d-1 set: a billing-active event (R2) on local day d
    report_days: int = 0  # bit d-1 set: a reports-MAU event (R14) on local day d
    notify_days: int = 0  # bit d-1 set: a notification kind on local day d
    first_bill: Evidence | None = None
    first_report: Evidence | None = None
    first_notify: Evidence | None = None

    def merge(self, other: MonthActivity) -> MonthActivity:
        return MonthActivity(
            self.bill_days | other.bill_days,
            self.report_days | other.report_days,
            self.notify_days | other.notify_days,
            _min(self.first_bill, other.first_bill),
            _min(self.first_report, other.first_report),
            _min(self.first_notify, other.first_notify),
        )

    def to_tuple(self) -> tuple:
        return (
            self.bill_days,
            self.report_days,
            self.notify_days,
            self.first_bill,
            self.first_report,
            self.first_notify,
        )

    @classmethod
    def from_tuple(cls, t) -> MonthActivity:
        return cls(t[0], t[1], t[2], *(tuple(e) if e is not None else None for e in t[3:6]))


@dataclass(frozen=True, slots=True, init=False)
class Record:
    """An account or company event reduced to what the rules read; `attrs` is a sorted tuple.

    Frozen; `__init__` is written out (the generated one looks up `object.__setattr__` per field,
    and the batch path builds a Record per account event; a test holds it to the fields)."""

    ts: int
    event_id: str
    type: str
    attrs: tuple[tuple[str, object], ...] = ()

    def __init__(self, ts: int, event_id: str, type: str, attrs: tuple[tuple[str, object], ...] = ()) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "ts", ts)
        setattr_(self, "event_id", event_id)
        setattr_(self, "type", type)
        setattr_(self, "attrs", attrs)

    def get(self, key: str, default=None):
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.attrs)

    @property
    def evidence(self) -> Evidence:
        return (self.ts, self.event_id, self.type)

    def to_list(self) -> list:
        return [self.ts, self.event_id, self.type, [list(a) for a in self.attrs]]

    @classmethod
    def from_list(cls, v) -> Record:
        return cls(v[0], v[1], v[2], tuple((a[0], a[1]) for a in v[3]))


def _merge_records(a: dict[str, Record], b: dict[str, Record]) -> dict[str, Record]:
    """Union keyed by event_id; on a conflicting duplicate the earlier-known one stays (`a` wins)."""
    if not b:
        return a
    out = dict(b)
    out.update(a)
    return out


def guest_key(guest_of: str, invite_id: str) -> str:
    """The key of a guest-invite candidate in its home company's facts: (inviting company, invite
    id), since an event id is unique only within its company (the contract's dedup key)."""
    return guest_of + "\x1f" + invite_id


_TIME_THEN_ID = attrgetter("ts", "event_id")


def ordered(records: dict[str, Record]) -> list[Record]:
    return sorted(records.values(), key=_TIME_THEN_ID)


@dataclass(slots=True)
class AccountFacts:
    """One account's lifecycle and profile events, and the earliest event that made it known."""

    records: dict[str, Record] = field(default_factory=dict)
    first_seen: Evidence | None = None

    def merge(self, other: AccountFacts) -> AccountFacts:
        return AccountFacts(_merge_records(self.records, other.records), _min(self.first_seen, other.first_seen))

    def to_json(self) -> dict:
        return {"r": [r.to_list() for r in ordered(self.records)], "f": self.first_seen}

    @classmethod
    def from_json(cls, v: dict) -> AccountFacts:
        recs = (Record.from_list(x) for x in v["r"])
        return cls({r.event_id: r for r in recs}, tuple(v["f"]) if v["f"] else None)


@dataclass(slots=True)
class CompanyFacts:
    """A company's own events, when it was first seen, and guest invites naming it as home (R5)."""

    records: dict[str, Record] = field(default_factory=dict)
    first_own: Evidence | None = None  # earliest non-derived event of this company, any kind
    guest_invites: dict[str, Record] = field(default_factory=dict)  # guest_key -> derived trial candidate

    def merge(self, other: CompanyFacts) -> CompanyFacts:
        return CompanyFacts(
            _merge_records(self.records, other.records),
            _min(self.first_own, other.first_own),
            _merge_records(self.guest_invites, other.guest_invites),
        )

    @property
    def timezone_name(self) -> str:
        regs = [r for r in ordered(self.records) if r.type == "company_registered"]
        return (regs[0].get("timezone") or "UTC") if regs else "UTC"

    @property
    def registered(self) -> bool:
        return any(r.type == "company_registered" for r in self.records.values())

    def to_json(self) -> dict:
        return {
            "r": [r.to_list() for r in ordered(self.records)],
            "f": self.first_own,
            "g": [r.to_list() for r in ordered(self.guest_invites)],
        }

    @classmethod
    def from_json(cls, v: dict) -> CompanyFacts:
        recs = [Record.from_list(x) for x in v["r"]]
        gis = [Record.from_list(x) for x in v["g"]]
        return cls(
            {r.event_id: r for r in recs},
            tuple(v["f"]) if v["f"] else None,
            {guest_key(str(r.get("company_id", "")), r.event_id): r for r in gis},
        )


# Turning one event into fact deltas ---------------------------------------------------------------


def _attrs(kind: str, fields: dict) -> tuple[tuple[str, object], ...]:
    names = RULE_FIELDS.get(kind, ())
    return tuple(sorted((k, fields[k]) for k in names if k in fields))


def record_of(event_id: str, kind: str, ts: int, fields: dict) -> Record:
    """`fields` holds only the fields the publisher set (partial updates keep the rest)."""
    return Record(ts, event_id, kind, _attrs(kind, fields))


def activity_delta(kind: str, ts: int, event_id: str, tz: ZoneInfo) -> tuple[Month, MonthActivity]:
    """An activity event's contribution: its local month and one day bit per class it belongs to."""
    d = local_date(ts, tz)
    bit = 1 << (d.day - 1)
    ev = (ts, event_id, kind)
    b = kind in BILLING_ACTIVITY
    r = kind in REPORTING_ACTIVITY
    n = kind in NOTIFICATION_ACTIVITY
    return Month.of(d), MonthActivity(
        bit if b else 0,
        bit if r else 0,
        bit if n else 0,
        ev if b else None,
        ev if r else None,
        ev if n else None,
    )


def derived_trial_id(invite_event_id: str) -> str:
    return DERIVED_TRIAL_PREFIX + invite_event_id


@dataclass(slots=True)
class FactSet:
    """All facts of a set of events, in plain dicts: the batch path's state and the tests' oracle."""

    companies: dict[str, CompanyFacts] = field(default_factory=dict)
    accounts: dict[tuple[str, str], AccountFacts] = field(default_factory=dict)
    activity: dict[tuple[str, str, Month], MonthActivity] = field(default_factory=dict)

    def company(self, cid: str) -> CompanyFacts:
        return self.companies.get(cid) or CompanyFacts()

    def merge_company(self, cid: str, delta: CompanyFacts) -> bool:
        cur = self.companies.get(cid)
        new = delta if cur is None else cur.merge(delta)
        changed = cur is None or new != cur
        self.companies[cid] = new
        return changed

    def merge_account(self, key: tuple[str, str], delta: AccountFacts) -> bool:
        cur = self.accounts.get(key)
        new = delta if cur is None else cur.merge(delta)
        changed = cur is None or new != cur
        self.accounts[key] = new
        return changed

    def merge_activity(self, key: tuple[str, str, Month], delta: MonthActivity) -> bool:
        cur = self.activity.get(key)
        new = delta if cur is None else cur.merge(delta)
        changed = cur is None or new != cur
        self.activity[key] = new
        return changed

    def users_of(self, cid: str) -> list[str]:
        return sorted(u for (c, u) in self.accounts if c == cid)


def event_fields(ev) -> dict:
    """The kind-specific fields a publisher actually set on a validated event model."""
    data = {k: getattr(ev, k) for k in ev.model_fields_set if k in RULE_FIELDS.get(ev.type, ())}
    if "last_trial_day" in data and data["last_trial_day"] is not None:
        data["last_trial_day"] = data["last_trial_day"].isoformat()
    if ev.type == "trial_started" and ev.source is not None:
        data["source"] = ev.source
    return data


def company_deltas(ev) -> list[tuple[str, CompanyFacts]]:
    """Company-fact deltas of one event: its own company's, and a guest's home company (R5)."""
    ts = to_us(ev.occurred_at)
    own = CompanyFacts()
    derived = ev.type == "trial_started" and ev.source == DERIVED_TRIAL_SOURCE
    if not derived:
        own.first_own = (ts, ev.event_id, ev.type)
    if ev.type in COMPANY_EVENTS and not derived:
        own.records = {ev.event_id: record_of(ev.event_id, ev.type, ts, event_fields(ev))}
    out = [(ev.company_id, own)]
    if derived:
        # A derived trial reaches the home company's partition as a candidate, not as its own event.
        invite_id = ev.event_id[len(DERIVED_TRIAL_PREFIX) :]
        guest_of = (ev.extras or {}).get("guest_of", "")
        cand = Record(ts, invite_id, "invite", (("company_id", guest_of),))
        out = [(ev.company_id, CompanyFacts(guest_invites={guest_key(guest_of, invite_id): cand}))]
    return out


def guest_home(ev) -> str | None:
    """The home company an invite names, when it is another company (a guest, R5)."""
    home = getattr(ev, "guest_home_company_id", None) if ev.type == "invite" else None
    return home if home and home != ev.company_id else None


def fold(facts: FactSet, ev, tz_of) -> None:
    """Fold one validated event into `facts`. `tz_of(company_id) -> ZoneInfo` gives the billing zone.

    The reference fold: the batch builder and the streaming agents must produce the same facts.
    A guest invite also adds a derived-trial candidate to the home company (R5), exactly as the
    derived `trial_started` event does in the streaming path.
    """
    ts = to_us(ev.occurred_at)
    for cid, delta in company_deltas(ev):
        facts.merge_company(cid, delta)
    home = guest_home(ev)
    if home is not None:
        cand = Record(ts, ev.event_id, "invite", (("company_id", ev.company_id),))
        facts.merge_company(home, CompanyFacts(guest_invites={guest_key(ev.company_id, ev.event_id): cand}))
    if ev.type in COMPANY_EVENTS:
        return
    key = (ev.company_id, ev.user_id)
    acc = AccountFacts(first_seen=(ts, ev.event_id, ev.type))
    if ev.type in ACCOUNT_EVENTS:
        acc.records = {ev.event_id: record_of(ev.event_id, ev.type, ts, event_fields(ev))}
    facts.merge_account(key, acc)
    if ev.type not in ACCOUNT_EVENTS:
        month, activity = activity_delta(ev.type, ts, ev.event_id, tz_of(ev.company_id))
        facts.merge_activity((ev.company_id, ev.user_id, month), activity)


def fold_all(events) -> FactSet:
    """Fold a complete set of events (batch semantics): zones are known before activity is bucketed."""
    from projections.calendar import zone

    events = list(events)
    facts = FactSet()
    for ev in events:
        if ev.type in COMPANY_EVENTS:
            for cid, delta in company_deltas(ev):
                facts.merge_company(cid, delta)
    zones = {cid: zone(cf.timezone_name) for cid, cf in facts.companies.items()}
    utc = zone("UTC")
    for ev in events:
        fold(facts, ev, lambda c: zones.get(c, utc))
    return facts
