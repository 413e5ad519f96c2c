"""decide(): facts + month -> one explained decision per account. Pure; shared by every path.

The streaming worker, the batch replay and the dispute tool all call `decide_company`, so the
differential test between them only has to compare facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson

from projections.calendar import Month, MonthBounds, local_iso, zone
from projections.facts import AccountFacts, CompanyFacts, Evidence, FactSet, MonthActivity, Record, ordered
from projections.money import ZERO
from projections.prices import PriceBook, UnitPrices
from projections.rules import (
    Lifecycle,
    NonprofitStatus,
    PaymentProfile,
    Trial,
    billing_model,
    guest_invite,
    lifecycle,
    nonprofit_status,
    payment_profile,
    plan_in_force,
    profile_as_of,
    rejected_company_events,
    tier,
    trial_covering,
)
from projections.rulesets import CURRENT, RuleSet, get_ruleset

DECISION_COLUMNS = (
    "company_id",
    "user_id",
    "month",
    "billable",
    "charged",
    "tier",
    "rule",
    "reason",
    "evidence",
    "unit_price_usd",
    "ruleset_version",
)


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """One account's decision for one month. Frozen; `__init__` is written out (same parameters as
    the generated one, a test holds them to the fields) because the generated one of a frozen
    dataclass looks up `object.__setattr__` per field, a third of bulk decide's cost per account."""

    company_id: str
    user_id: str
    month: str
    billable: bool
    charged: bool
    tier: str
    rule: str
    reason: str
    evidence: str  # JSON array of {"event_id", "type", "occurred_at"} in the company's zone
    unit_price_usd: Decimal
    ruleset_version: str
    plan: str = ""  # not part of the published row: invoices group by it

    def __init__(
        self,
        company_id: str,
        user_id: str,
        month: str,
        billable: bool,
        charged: bool,
        tier: str,
        rule: str,
        reason: str,
        evidence: str,
        unit_price_usd: Decimal,
        ruleset_version: str,
        plan: str = "",
    ) -> None:
        setattr_ = object.__setattr__  # frozen: the fields are set once, here
        setattr_(self, "company_id", company_id)
        setattr_(self, "user_id", user_id)
        setattr_(self, "month", month)
        setattr_(self, "billable", billable)
        setattr_(self, "charged", charged)
        setattr_(self, "tier", tier)
        setattr_(self, "rule", rule)
        setattr_(self, "reason", reason)
        setattr_(self, "evidence", evidence)
        setattr_(self, "unit_price_usd", unit_price_usd)
        setattr_(self, "ruleset_version", ruleset_version)
        setattr_(self, "plan", plan)

    def row(self) -> dict:
        """The published row (replay output, `account_decisions`), same columns everywhere."""
        return {c: getattr(self, c) for c in DECISION_COLUMNS}

    def digest_key(self) -> tuple:
        """What an amendment compares: a decision changed when any published value changed."""
        return tuple(getattr(self, c) for c in DECISION_COLUMNS)


@dataclass(slots=True)
class CompanyMonth:
    """Everything about the company that holds for the whole month (read once per company)."""

    company_id: str
    month: Month
    tz: ZoneInfo
    bounds: MonthBounds
    plan: str
    plan_evidence: Record | None
    model: str
    trial: Trial | None
    nonprofit: NonprofitStatus | None
    payment: PaymentProfile
    notices: list[tuple[Record, str]] = field(default_factory=list)


def company_month(company_id: str, company: CompanyFacts, month: Month) -> CompanyMonth:
    tz = zone(company.timezone_name)
    plan, plan_ev = plan_in_force(company, month, tz)
    np = nonprofit_status(company, month, tz)
    trial = trial_covering(company, month, tz)
    if np is not None and np.free:
        # Workplace for Good is free *Advanced*: the invited-user model applies while it frees the month.
        plan = "advanced"
    elif trial is not None and trial.derived and plan_ev is None:
        # R5's derived trial is an Advanced trial for a company that has chosen no plan yet.
        plan = "advanced"
    end = month.end_us(tz)
    payment, _ = payment_profile(company, end)
    return CompanyMonth(
        company_id,
        month,
        tz,
        MonthBounds.of(month, tz),
        plan,
        plan_ev,
        billing_model(plan),
        trial,
        np,
        payment,
        rejected_company_events(company, month.start_us(tz), end),
    )


EvidenceItem = Record | Evidence | None  # None: a proof the account does not have, skipped


_TYPE_JSON: dict[str, str] = {}  # an event type as a JSON string (a few dozen types)


def evidence_json(items: list[EvidenceItem], tz: ZoneInfo) -> str:
    """The evidence column: a JSON array of {"event_id", "type", "occurred_at"}, each event once.

    Written as text, byte for byte what `orjson.dumps` of the list of dicts gives (the event id and
    type through orjson's string encoder): one per decision, so it is kept to string joins."""
    seen: list[str] = []
    parts: list[str] = []
    for it in items:
        if it is None:
            continue
        ts, eid, kind = it.evidence if isinstance(it, Record) else it
        if eid in seen:
            continue
        seen.append(eid)
        parts.append(evidence_item(ts, eid, kind, tz))
    return "[" + ",".join(parts) + "]"


def evidence_item(ts: int, eid: str, kind: str, tz: ZoneInfo) -> str:
    """One element of the evidence column, {"event_id", "type", "occurred_at"}, as JSON text: for a
    caller that knows its items are present and distinct (`evidence_json` of them is "[" + the
    elements joined by "," + "]"), without the loop."""
    kind_json = _TYPE_JSON.get(kind)
    if kind_json is None:
        kind_json = _TYPE_JSON[kind] = _dumps(kind).decode()
    return f'{{"event_id":{_dumps(eid).decode()},"type":{kind_json},"occurred_at":"{local_iso(ts, tz)}"}}'


_dumps = orjson.dumps


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules decided for one account, before it is written down as a `Decision`: the
    evidence is still the items themselves (records, evidence tuples, None to skip)."""

    billable: bool
    charged: bool
    tier: str
    rule: str
    reason: str
    evidence: list[EvidenceItem]
    price: Decimal = ZERO


def account_verdict(
    cm: CompanyMonth,
    records: list[Record],
    first_seen: Evidence | None,
    activity: MonthActivity | None,
    prices: UnitPrices,
    ruleset: RuleSet = CURRENT,
) -> Verdict:
    """The rule text: one account's verdict from its records in (ts, event_id) order."""
    bounds = cm.bounds
    prof = profile_as_of(records, bounds.day1_cutoff_us)
    acct_tier = tier(prof)

    guest = guest_invite(records, cm.company_id, bounds.end_us)
    if guest is not None:
        return Verdict(False, False, acct_tier, "R5", "guest", [guest])

    life: Lifecycle = lifecycle(records, bounds, cm.model)
    if not life.full_month:
        evidence: list[EvidenceItem] = [*life.evidence] or [first_seen]
        return Verdict(False, False, acct_tier, life.rule, life.reason, evidence)

    if cm.model == "active":
        proof = ruleset.billing_proof(activity)
        if proof is None:
            notif = activity.first_notify if activity else None
            reason = "notification_only" if notif else "no_billing_activity"
            return Verdict(False, False, acct_tier, "R2", reason, [*life.evidence, notif])
        billable_rule, billable_reason, evidence = "R2", "active_full_month", [*life.evidence, proof]
    else:
        billable_rule, billable_reason, evidence = "R3", "invited_full_month", list(life.evidence)

    if cm.trial is not None:
        return Verdict(True, False, acct_tier, "R6", "trial", [*evidence, cm.trial.record])
    np = cm.nonprofit
    if np is not None and np.free:
        if prof.employment == "other":
            price = prices.unit_price(cm.plan, acct_tier, cm.month)
            return Verdict(True, True, acct_tier, "R8", "nonprofit_other_relation", [*evidence, *np.evidence], price)
        return Verdict(True, False, acct_tier, np.rule, np.reason, [*evidence, *np.evidence])
    # The tier (R7) is its own column; the rule that made the account billable stays R2 or R3.
    price = prices.unit_price(cm.plan, acct_tier, cm.month)
    return Verdict(True, True, acct_tier, billable_rule, billable_reason, evidence, price)


def ordered_records(account: AccountFacts) -> list[Record]:
    return ordered(account.records) if len(account.records) > 1 else list(account.records.values())


def decide_account(
    cm: CompanyMonth,
    user_id: str,
    account: AccountFacts,
    activity: MonthActivity | None,
    prices: UnitPrices,
    ruleset: RuleSet = CURRENT,
) -> Decision:
    """One account's decision, on its own (the reference `projections.bulk` is tested against)."""
    v = account_verdict(cm, ordered_records(account), account.first_seen, activity, prices, ruleset)
    return Decision(
        cm.company_id,
        user_id,
        str(cm.month),
        v.billable,
        v.charged,
        v.tier,
        v.rule,
        v.reason,
        evidence_json(v.evidence, cm.tz),
        v.price,
        ruleset.version,
        cm.plan,
    )


# Deciding many accounts at once --------------------------------------------------------------------

Slot = tuple  # where a template's evidence item comes from in each account (see `BulkDecider`)
_PROOF, _NOTIFY, _FIRST_BILL, _FIRST_REPORT, _FIRST_SEEN = ("p",), ("n",), ("b",), ("rp",), ("f",)


@dataclass(frozen=True, slots=True)
class Template:
    """The verdict of every account of one shape, with its evidence as slots to fill per account."""

    billable: bool
    charged: bool
    tier: str
    rule: str
    reason: str
    price: Decimal
    slots: tuple[Slot, ...]


class BulkDecider:
    """`decide_account` for the accounts of one company-month, with the rules run once per shape.

    Within a company-month the verdict depends on an account only through its *shape*: the
    presence of a billing proof, a notification (R2) and a first event; its records up to the
    month's end other than profile updates (lifecycle and guest events, R1/R3/R5) as (type, which
    of [.., start), [start, day 2), [day 2, end) the instant falls in, whether an invite names
    another home company); and what its profile on day 1 gives the rules: the tier (R7) and the
    employment (R8). `account_verdict` runs on the first account of each shape, with every evidence
    source its own object; each evidence item is then known by where it came from (lifecycle
    record i, the proof, the first notification, the first event seen, or a company record), and
    the accounts of that shape get their own items from the same places.

    The profile costs a pass over the records, so accounts are first looked up by their raw key
    (every record with its attributes, `raw_key`), which is finer; only an account whose raw key
    is new pays for its shape. Equal to `decide_account` for every account:
    tests/unit/projections/test_bulk_decide.py checks it on random facts.
    """

    __slots__ = ("cm", "prices", "ruleset", "templates", "shapes", "_bounds", "_month", "_version")

    def __init__(self, cm: CompanyMonth, prices: UnitPrices, ruleset: RuleSet = CURRENT):
        self.cm = cm
        self.prices = prices
        self.ruleset = ruleset
        self.templates: dict[tuple, Template] = {}  # by raw key
        self.shapes: dict[tuple, Template] = {}  # by shape: raw keys of one shape share a template
        b = cm.bounds
        self._bounds = (b.start_us, b.day1_cutoff_us, b.end_us)
        self._month = str(cm.month)
        self._version = ruleset.version

    def raw_key(
        self, records: list[Record], first_seen: object, proof: object, notif: object
    ) -> tuple[tuple, list[Record]]:
        """(every record up to the month's end with its bucket and attributes, the lifecycle
        records among them: those an evidence slot indexes)."""
        start, cut, end = self._bounds
        key: list = [proof is not None, notif is not None, first_seen is not None]
        kept: list[Record] = []
        for r in records:
            ts = r.ts
            if ts >= end:  # no rule reads a record from after the month (records are in time order)
                break
            t = r.type
            if t == "invite":
                home = r.get("guest_home_company_id")
                key.append((t, 0 if ts < start else 1 if ts < cut else 2, bool(home and home != self.cm.company_id)))
            else:
                key.append((t, 0 if ts < start else 1 if ts < cut else 2, r.attrs))
            if t != "profile_update":
                kept.append(r)
        return tuple(key), kept

    def shape(self, raw_key: tuple, records: list[Record], kept: list[Record]) -> tuple:
        """The shape (see the class): the raw key without profile updates and attributes, plus
        the tier and employment of the profile on day 1."""
        prof = profile_as_of(records, self._bounds[1])
        life = tuple(k[:2] if k[0] != "invite" else k for k in raw_key[3:] if k[0] != "profile_update")
        assert len(life) == len(kept)
        return (*raw_key[:3], life, tier(prof), prof.employment)

    def template(
        self, records: list[Record], first_seen: Evidence | None, activity: MonthActivity | None, proof: object
    ) -> tuple[Template, list[Record]]:
        """The template of the account's shape and its lifecycle records (what ("r", i) slots
        index); `proof`: `ruleset.billing_proof(activity)`. For a caller that fills the slots
        from its own copy of the account (the worker's close reads its stored values)."""
        notif = activity.first_notify if activity is not None else None
        key, kept = self.raw_key(records, first_seen, proof, notif)
        tpl = self.templates.get(key)
        if tpl is None:
            shape = self.shape(key, records, kept)
            tpl = self.shapes.get(shape)
            if tpl is None:
                tpl = self.shapes[shape] = self._template(records, kept, first_seen, activity)
            self.templates[key] = tpl
        return tpl, kept

    def verdict(
        self, records: list[Record], first_seen: Evidence | None, activity: MonthActivity | None
    ) -> tuple[Template, list[EvidenceItem]]:
        """The account's template and its own evidence items (`records` in (ts, event_id) order)."""
        proof = self.ruleset.billing_proof(activity)
        tpl, kept = self.template(records, first_seen, activity, proof)
        items: list[EvidenceItem] = []
        for slot in tpl.slots:
            tag = slot[0]
            if tag == "r":
                items.append(kept[slot[1]])
            elif tag == "p":
                items.append(proof)
            elif tag == "n":
                items.append(activity.first_notify if activity is not None else None)
            elif tag == "f":
                items.append(first_seen)
            elif tag == "b":
                items.append(activity.first_bill if activity is not None else None)
            elif tag == "rp":
                items.append(activity.first_report if activity is not None else None)
            else:
                items.append(slot[1])
        return tpl, items

    def decide(
        self, user_id: str, records: list[Record], first_seen: Evidence | None, activity: MonthActivity | None
    ) -> Decision:
        tpl, items = self.verdict(records, first_seen, activity)
        return self.decision(tpl, user_id, evidence_json(items, self.cm.tz))

    def decision(self, tpl: Template, user_id: str, evidence: str) -> Decision:
        """The account's decision from its template and its evidence column."""
        return Decision(
            self.cm.company_id, user_id, self._month, tpl.billable, tpl.charged, tpl.tier, tpl.rule, tpl.reason,
            evidence, tpl.price, self._version, self.cm.plan,
        )  # fmt: skip

    def _template(
        self, records: list[Record], kept: list[Record], first_seen: Evidence | None, activity: MonthActivity | None
    ) -> Template:
        """Run the rules on copies that give every evidence source its own identity, then name
        each evidence item by its source (a record by its place among the lifecycle records)."""
        fs = _copy(first_seen)
        act = None
        if activity is not None:
            act = MonthActivity(  # not dataclasses.replace: a template per shape, thousands per month
                activity.bill_days,
                activity.report_days,
                activity.notify_days,
                _copy(activity.first_bill),
                _copy(activity.first_report),
                _copy(activity.first_notify),
            )
        v = account_verdict(self.cm, records, fs, act, self.prices, self.ruleset)
        proof = self.ruleset.billing_proof(act)
        index = {id(r): i for i, r in enumerate(kept)}
        own = {id(r) for r in records}
        sources = [(proof, _PROOF)]
        if act is not None:
            sources += [(act.first_notify, _NOTIFY), (act.first_bill, _FIRST_BILL), (act.first_report, _FIRST_REPORT)]
        sources.append((fs, _FIRST_SEEN))
        slots: list[Slot] = []
        for it in v.evidence:
            if it is None:
                continue
            i = index.get(id(it))
            if i is not None:
                slots.append(("r", i))
                continue
            if id(it) in own:  # a record outside the shape would be another account's constant
                raise AssertionError(f"evidence from a record the shape leaves out: {it}")
            slots.append(next((s for src, s in sources if src is not None and src is it), ("k", it)))
        return Template(v.billable, v.charged, v.tier, v.rule, v.reason, v.price, tuple(slots))


def _copy(ev: Evidence | None) -> Evidence | None:
    """An equal evidence tuple that is a distinct object (its source is then known by identity)."""
    return None if ev is None else (ev[0], ev[1], ev[2])


class _PriceMemo:
    """`PriceBook.unit_price` remembered per (plan, tier, month) for one company's accounts.

    Only found prices are kept; a missing price raises on every call as the book does."""

    __slots__ = ("book", "found")

    def __init__(self, book: PriceBook):
        self.book = book
        self.found: dict[tuple, Decimal] = {}

    def unit_price(self, plan: str, tier: str, month: Month) -> Decimal:
        key = (plan, tier, month)
        price = self.found.get(key)
        if price is None:
            price = self.found[key] = self.book.unit_price(plan, tier, month)
        return price


def company_decider(cm: CompanyMonth, prices: PriceBook, ruleset: RuleSet = CURRENT) -> BulkDecider:
    """The decider of one company-month's accounts, its unit prices looked up once per tier."""
    return BulkDecider(cm, _PriceMemo(prices), ruleset)


def known_by(account: AccountFacts, end_us: int) -> bool:
    """An account belongs in a month's snapshot once any event of it happened before the month ended."""
    return account.first_seen is not None and account.first_seen[0] < end_us


def company_known_by(company: CompanyFacts, end_us: int) -> bool:
    """A company has a month (an invoice, a snapshot) once any event of its own, or a guest invite
    naming it as home (R5: it may get a trial from it), happened before the month ended. A company
    that first appears later has no invoice for the month, on any path."""
    first = company.first_own
    return (first is not None and first[0] < end_us) or any(r.ts < end_us for r in company.guest_invites.values())


def company_has_month(company: CompanyFacts, month: Month) -> bool:
    """`company_known_by` the end of `month` in the company's own zone: whether it has the month
    (the batch path's companies and the worker's close alike)."""
    return company_known_by(company, month.end_us(zone(company.timezone_name)))


def decide_company(
    company_id: str,
    month: Month,
    company: CompanyFacts,
    accounts: dict[str, AccountFacts],
    activity: dict[str, MonthActivity],
    prices: PriceBook,
    ruleset: RuleSet | str = CURRENT,
) -> tuple[CompanyMonth, list[Decision]]:
    """One decision per account known in the company at the end of the month, ordered by user."""
    rs = get_ruleset(ruleset) if isinstance(ruleset, str) else ruleset
    cm = company_month(company_id, company, month)
    end = cm.bounds.end_us
    bulk = company_decider(cm, prices, rs)
    decide, get_activity = bulk.decide, activity.get
    out = []
    for uid, acc in sorted(accounts.items()):
        fs = acc.first_seen
        if fs is None or fs[0] >= end:  # not known_by(acc, end), inlined: a loop over every account
            continue
        recs = acc.records
        out.append(decide(uid, ordered(recs) if len(recs) > 1 else list(recs.values()), fs, get_activity(uid)))
    return cm, out


def decide_month(
    facts: FactSet,
    month: Month,
    prices: PriceBook,
    ruleset: RuleSet | str = CURRENT,
    companies: Iterable[str] | None = None,
) -> Iterator[tuple[str, CompanyMonth, list[Decision]]]:
    """(company_id, company month, decisions) of each company of `companies` (default: every
    company of `facts`, sorted), in that order: `facts` indexed by company once (accounts by user,
    the month's activity by user), then `decide_company` per company.

    Lazy, so a caller can stream a month of many companies and stop early; pure like decide_company.
    """
    cids = sorted(facts.companies) if companies is None else list(companies)
    rs = get_ruleset(ruleset) if isinstance(ruleset, str) else ruleset
    accounts: dict[str, dict[str, AccountFacts]] = {}
    for (cid, uid), acc in facts.accounts.items():
        by_user = accounts.get(cid)
        if by_user is None:
            by_user = accounts[cid] = {}
        by_user[uid] = acc
    activity: dict[str, dict[str, MonthActivity]] = {}
    year, mon = month.year, month.month  # compared as ints: Month's dataclass __eq__ is slow per row
    for (cid, uid, mo), act in facts.activity.items():
        if mo.month == mon and mo.year == year:
            per = activity.get(cid)
            if per is None:
                per = activity[cid] = {}
            per[uid] = act
    for cid in cids:
        cm, decisions = decide_company(
            cid, month, facts.company(cid), accounts.get(cid, {}), activity.get(cid, {}), prices, rs
        )
        yield cid, cm, decisions
