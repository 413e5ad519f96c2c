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


@dataclass(frozen=True, slots=True)
class Decision:
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


def _evidence_json(items: list[EvidenceItem], tz: ZoneInfo) -> str:
    seen = set()
    out = []
    for it in items:
        if it is None:
            continue
        ev = it.evidence if isinstance(it, Record) else it
        if ev[1] in seen:
            continue
        seen.add(ev[1])
        out.append({"event_id": ev[1], "type": ev[2], "occurred_at": local_iso(ev[0], tz)})
    return orjson.dumps(out).decode()


def decide_account(
    cm: CompanyMonth,
    user_id: str,
    account: AccountFacts,
    activity: MonthActivity | None,
    prices: UnitPrices,
    ruleset: RuleSet = CURRENT,
) -> Decision:
    tz, month, bounds = cm.tz, cm.month, cm.bounds
    records = ordered(account.records) if len(account.records) > 1 else list(account.records.values())
    prof = profile_as_of(records, bounds.day1_cutoff_us)
    acct_tier = tier(prof)

    def result(billable, charged, rule, reason, evidence, price=ZERO) -> Decision:
        return Decision(
            cm.company_id,
            user_id,
            str(month),
            billable,
            charged,
            acct_tier,
            rule,
            reason,
            _evidence_json(evidence, tz),
            price,
            ruleset.version,
            cm.plan,
        )

    guest = guest_invite(records, cm.company_id, bounds.end_us)
    if guest is not None:
        return result(False, False, "R5", "guest", [guest])

    life: Lifecycle = lifecycle(records, bounds, cm.model)
    if not life.full_month:
        evidence: list[EvidenceItem] = [*life.evidence] or [account.first_seen]
        return result(False, False, life.rule, life.reason, evidence)

    if cm.model == "active":
        proof = ruleset.billing_proof(activity)
        if proof is None:
            notif = activity.first_notify if activity else None
            reason = "notification_only" if notif else "no_billing_activity"
            return result(False, False, "R2", reason, [*life.evidence, notif])
        billable_rule, billable_reason, evidence = "R2", "active_full_month", [*life.evidence, proof]
    else:
        billable_rule, billable_reason, evidence = "R3", "invited_full_month", list(life.evidence)

    if cm.trial is not None:
        return result(True, False, "R6", "trial", [*evidence, cm.trial.record])
    np = cm.nonprofit
    if np is not None and np.free:
        if prof.employment == "other":
            price = prices.unit_price(cm.plan, acct_tier, month)
            return result(True, True, "R8", "nonprofit_other_relation", [*evidence, *np.evidence], price)
        return result(True, False, np.rule, np.reason, [*evidence, *np.evidence])
    # The tier (R7) is its own column; the rule that made the account billable stays R2 or R3.
    price = prices.unit_price(cm.plan, acct_tier, month)
    return result(True, True, billable_rule, billable_reason, evidence, price)


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


def known_by(account: AccountFacts, end_us: int) -> bool:
    """An account belongs in a month's snapshot once any event of it happened before the month ended."""
    return account.first_seen is not None and account.first_seen[0] < end_us


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
    memo = _PriceMemo(prices)
    out = [
        decide_account(cm, uid, acc, activity.get(uid), memo, rs)
        for uid, acc in sorted(accounts.items())
        if known_by(acc, end)
    ]
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
        accounts.setdefault(cid, {})[uid] = acc
    activity: dict[str, dict[str, MonthActivity]] = {}
    for (cid, uid, mo), act in facts.activity.items():
        if mo == month:
            activity.setdefault(cid, {})[uid] = act
    for cid in cids:
        cm, decisions = decide_company(
            cid, month, facts.company(cid), accounts.get(cid, {}), activity.get(cid, {}), prices, rs
        )
        yield cid, cm, decisions
